"""``monitors.check`` (periodic): a missed or failed cron check-in opens (or reopens) an issue for
its monitor and notifies the project's rules through ``notify.send_activity``.

Each monitor has a watermark (``checked_until``); a run judges what lies between the watermark and
now (:func:`eventpipe.pipeline.monitors.judge`) and moves it in the same transaction that writes
the issue and its activity, under a compare-and-set on the old watermark, so two concurrent runs
report a failure once."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Activity, CheckIn, CronMonitor, GroupHash, Issue
from eventpipe.metadata.repo import insert_ignore
from eventpipe.pipeline.monitors import CheckInFact, Failure, judge
from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.notify import send_activity

Runtime = TaskContext


@task("monitors.check", queue="monitors", every="1m", schedule={"expires_s": 90})
def check(rt: Runtime, *, now: str | None = None) -> list[dict[str, Any]]:
    """Open an issue for every missed or failed check-in since the last run (``now``: judge as of
    that ISO instant instead of the clock)."""
    now_dt = datetime.fromisoformat(now) if now else utcnow()
    opened: list[dict[str, Any]] = []
    activities: list[dict[str, Any]] = []
    with rt.db.session() as s:
        monitors = list(s.scalars(select(CronMonitor)))
    for m in monitors:
        margin = timedelta(minutes=m.margin_minutes)
        since = m.checked_until or m.created_at
        if now_dt <= since:
            continue
        with rt.db.session() as s:
            checkins = [CheckInFact(c.received_at, c.status) for c in s.execute(
                select(CheckIn.received_at, CheckIn.status).where(CheckIn.monitor_id == m.id, CheckIn.received_at > since - 2 * margin)
            )]
            failures, watermark = judge(m.schedule, margin, since, now_dt, checkins)
            moved = s.execute(update(CronMonitor).where(CronMonitor.id == m.id, CronMonitor.checked_until == m.checked_until)
                              .values(checked_until=watermark)).rowcount
            if not moved:
                continue  # another run judged this stretch
            for f in failures:
                issue_id, kind = _open_issue(s, m, f, now_dt)
                opened.append({"monitor": m.slug, "project_id": m.project_id, "issue_id": issue_id, "reason": f.reason, "at": f.at.isoformat()})
                activities.append({"project_id": m.project_id, "issue_id": issue_id, "kind": kind,
                                   "key": f"monitor:{m.id}:{f.key}", "detail": {"monitor": m.slug, "reason": f.reason, "at": f.at.isoformat()}})
    if activities:
        rt.enqueue_many(send_activity, activities)
    return opened


def _open_issue(s: Session, m: CronMonitor, f: Failure, now: datetime) -> tuple[int, str]:
    """Upsert the monitor's issue (one per monitor and reason); returns (issue id, activity kind)."""
    fingerprint = hashlib.md5(f"monitor:{m.project_id}:{m.slug}:{f.reason}".encode()).hexdigest()
    title = f"Cron monitor {m.name!r} {'missed a check-in' if f.reason == 'missed' else 'reported a failure'}"
    created = insert_ignore(s, Issue, [{"project_id": m.project_id, "fingerprint_hash": fingerprint, "title": title[:512],
                              "culprit": f"monitor:{m.slug}", "level": "error", "status": "unresolved", "first_seen": f.at,
                              "last_seen": f.at, "times_seen": 0}], ["project_id", "fingerprint_hash"])
    issue = s.scalars(select(Issue).where(Issue.project_id == m.project_id, Issue.fingerprint_hash == fingerprint)).one()
    kind = "first_seen" if created else ("regression" if issue.status == "resolved" else "monitor_failure")
    issue.status = "unresolved"
    issue.resolved_at = None
    issue.times_seen += 1
    issue.last_seen = max(issue.last_seen, f.at)
    insert_ignore(s, GroupHash, [{"project_id": m.project_id, "hash": fingerprint, "issue_id": issue.id}], ["project_id", "hash"])
    insert_ignore(s, Activity, [{"project_id": m.project_id, "issue_id": issue.id, "kind": kind,
                                 "event_id": f"m{m.id}{f.at:%y%m%d%H%M%S}"[:32], "created_at": now}], ["issue_id", "kind", "event_id"])
    return issue.id, kind
