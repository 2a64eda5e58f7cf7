"""Cron monitors in SQL: add, list, and record check-ins (from the HTTP route and envelope items)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import select

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import CheckIn, CronMonitor, Project
from eventpipe.metadata.repo import insert_ignore
from eventpipe.pipeline.monitors import MonitorError, normalize_status, slugify, validate_schedule


class UnknownMonitor(MonitorError):
    """A check-in names a monitor the project does not have."""

    exit_code: ClassVar[int] = 1


def monitor_dict(m: CronMonitor) -> dict[str, Any]:
    return {
        "id": m.id,
        "project_id": m.project_id,
        "slug": m.slug,
        "name": m.name,
        "schedule": m.schedule,
        "margin_minutes": m.margin_minutes,
        "checked_until": m.checked_until.isoformat() if m.checked_until else None,
    }


def add_monitor(db: Database, project_id: int, name: str, schedule: str, *, margin_minutes: int = 5) -> dict[str, Any]:
    expr = validate_schedule(schedule)
    slug = slugify(name)
    if margin_minutes < 0:
        raise MonitorError("--margin-minutes must be 0 or more")
    now = utcnow()
    with db.session() as s:
        if s.get(Project, project_id) is None:
            raise MonitorError(f"no project {project_id}; create it with `eventpipe projects add {project_id} NAME`")
        if s.scalar(select(CronMonitor.id).where(CronMonitor.project_id == project_id, CronMonitor.slug == slug)) is not None:
            raise MonitorError(f"project {project_id} already has a monitor {slug!r}; see `eventpipe monitors list`")
        m = CronMonitor(project_id=project_id, slug=slug, name=name, schedule=expr, margin_minutes=margin_minutes,
                        created_at=now, checked_until=now + timedelta(minutes=margin_minutes))
        s.add(m)
        s.flush()
        return monitor_dict(m)


def list_monitors(db: Database, project_id: int | None = None) -> list[dict[str, Any]]:
    with db.session() as s:
        q = select(CronMonitor).order_by(CronMonitor.project_id, CronMonitor.slug)
        if project_id is not None:
            q = q.where(CronMonitor.project_id == project_id)
        return [monitor_dict(m) for m in s.scalars(q)]


def record_checkin(
    db: Database,
    project_id: int,
    slug: str,
    status: str,
    *,
    checkin_id: str | None = None,
    duration_ms: int | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """Store one check-in of monitor ``slug``; a repeated ``checkin_id`` with a new status (the
    reference system's in_progress then ok) updates it. Raises :class:`UnknownMonitor`."""
    value = normalize_status(status)
    cid = (checkin_id or uuid.uuid4().hex).replace("-", "")[:64]
    at = received_at or utcnow()
    with db.session() as s:
        monitor_id = s.scalar(select(CronMonitor.id).where(CronMonitor.project_id == project_id, CronMonitor.slug == slug))
        if monitor_id is None:
            raise UnknownMonitor(f"project {project_id} has no monitor {slug!r}; add it with `eventpipe monitors add NAME --project {project_id} --schedule CRON`")
        inserted = insert_ignore(s, CheckIn, [{"monitor_id": monitor_id, "checkin_id": cid, "status": value, "duration_ms": duration_ms, "received_at": at}], ["monitor_id", "checkin_id"])
        if not inserted:
            row = s.scalars(select(CheckIn).where(CheckIn.monitor_id == monitor_id, CheckIn.checkin_id == cid)).one()
            row.status, row.received_at = value, at
            if duration_ms is not None:
                row.duration_ms = duration_ms
    return {"monitor": slug, "project_id": project_id, "checkin_id": cid, "status": value}
