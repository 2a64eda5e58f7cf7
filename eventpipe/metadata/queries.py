"""Read-side queries for stats, issue lists and project setup."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select

from eventpipe.kvstore.base import RESERVED_PREFIX, KeyValueStore

from .db import Database, utcnow
from .models import Activity, BufferedCounter, DeadLetter, Event, Issue, Project


def ensure_project(db: Database, project_id: int, name: str, *, origins: list[str] | None = None) -> Project:
    """Create the project with a fresh ingest key unless it exists; idempotent. ``origins`` (when
    given) replaces the browser origins allowed to send events (default for new projects: ``*``)."""
    with db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            project = Project(
                id=project_id, name=name, ingest_key=secrets.token_hex(16), created_at=utcnow(), allowed_origins="*"
            )
            s.add(project)
        if origins is not None:
            project.allowed_origins = " ".join(origins)
        return project


def list_projects(db: Database) -> list[Project]:
    with db.session() as s:
        return list(s.scalars(select(Project).order_by(Project.id)))


def issue_rows(db: Database, *, project_id: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    with db.session() as s:
        q = select(Issue).order_by(Issue.times_seen.desc(), Issue.id)
        if project_id is not None:
            q = q.where(Issue.project_id == project_id)
        if limit:
            q = q.limit(limit)
        return [
            {
                "id": i.id,
                "project_id": i.project_id,
                "title": i.title,
                "culprit": i.culprit,
                "level": i.level,
                "status": i.status,
                "count": i.times_seen,
                "first_seen": i.first_seen.isoformat() + "Z",
                "last_seen": i.last_seen.isoformat() + "Z",
            }
            for i in s.scalars(q)
        ]


def totals(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {
            "events_stored": s.scalar(select(func.count()).select_from(Event)) or 0,
            "pending_counters": s.scalar(select(func.count()).select_from(BufferedCounter)) or 0,
            "dead_letters": s.scalar(select(func.count()).select_from(DeadLetter)) or 0,
            "activities": s.scalar(select(func.count()).select_from(Activity)) or 0,
        }


def store_totals(db: Database, store: KeyValueStore) -> dict[str, Any]:
    """What ``eventpipe stats`` and ``demo`` report: events indexed, bodies stored, every issue."""
    return {
        "events_stored": totals(db)["events_stored"],
        # event bodies only: not reserved keys, not attachments stored beside a body ({key}.att/...)
        "bodies_stored": sum(1 for k in store.keys() if not k.startswith(RESERVED_PREFIX) and ".att/" not in k),
        "issues": [
            {k: r[k] for k in ("id", "title", "count", "first_seen", "last_seen")} for r in issue_rows(db)
        ],
    }
