"""Read-side queries the issue pages add to :mod:`eventpipe.metadata.issues` (lists, details,
activity): new/regressed flags, 24 h counts from the hourly rollups, an issue's events in order
(previous/next), and an event's body from the KV store. Nothing here writes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, or_, select

from eventpipe.kvstore import KeyValueStore
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.rollup import buckets_between

from .db import Database, utcnow
from .models import Activity, Event, Rollup

SORTS = ("last_seen", "count", "first_seen")
LEVELS = ("fatal", "error", "warning", "info", "debug")
RECENT = timedelta(hours=24)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat() + "Z"


def flag_recent(db: Database, rows: list[dict[str, Any]], *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Mark issue rows ``new`` (first seen in the last 24 h) or ``regressed`` (a regression
    recorded in the last 24 h while still unresolved); returns the same rows."""
    t = now or utcnow()
    ids = [r["id"] for r in rows]
    with db.session() as s:
        regressed = set(s.scalars(select(Activity.issue_id).where(
            Activity.issue_id.in_(ids), Activity.kind == "regression", Activity.created_at >= t - RECENT))) if ids else set()
    for r in rows:
        r["new"] = datetime.fromisoformat(r["first_seen"][:-1]) >= t - RECENT
        r["regressed"] = r["id"] in regressed and r["status"] == "unresolved"
    return rows


def hourly_counts(db: Database, issue_ids: list[int], *, hours: int = 24, now: datetime | None = None) -> dict[int, list[int]]:
    """Events per hour for each issue over the last ``hours`` hours (oldest first), from the
    hourly rollups; hours without a rollup row count 0."""
    t = now or utcnow()
    buckets = buckets_between(t - timedelta(hours=hours - 1), t + timedelta(seconds=1), "hour")[-hours:]
    out = {i: [0] * len(buckets) for i in issue_ids}
    if not issue_ids or not buckets:
        return out
    pos = {b: n for n, b in enumerate(buckets)}
    with db.session() as s:
        for r in s.execute(select(Rollup.issue_id, Rollup.bucket, Rollup.count).where(
                Rollup.resolution == "hour", Rollup.issue_id.in_(issue_ids), Rollup.bucket >= buckets[0])):
            if r.bucket in pos:
                out[r.issue_id][pos[r.bucket]] = int(r.count)
    return out


def event_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "event_id": e.event_id, "project_id": e.project_id, "issue_id": e.issue_id,
            "timestamp": _iso(e.timestamp), "received_at": _iso(e.received_at), "kv_key": e.kv_key,
            "size": e.size, "platform": e.platform, "level": e.level}


def issue_event(db: Database, issue_id: int, event_id: str | None = None) -> dict[str, Any]:
    """One event of the issue (the latest unless ``event_id``) with the ids of the previous
    (older) and next (newer) events, by timestamp then row id, and the issue's event count."""
    with db.session() as s:
        base = select(Event).where(Event.issue_id == issue_id)
        if event_id:
            ev = s.scalar(base.where(Event.event_id == event_id))
        else:
            ev = s.scalar(base.order_by(Event.timestamp.desc(), Event.id.desc()).limit(1))
        total = s.scalar(select(func.count()).select_from(Event).where(Event.issue_id == issue_id)) or 0
        if ev is None:
            return {"event": None, "prev": None, "next": None, "total": total}
        older = or_(Event.timestamp < ev.timestamp, (Event.timestamp == ev.timestamp) & (Event.id < ev.id))
        newer = or_(Event.timestamp > ev.timestamp, (Event.timestamp == ev.timestamp) & (Event.id > ev.id))
        prev_id = s.scalar(select(Event.event_id).where(Event.issue_id == issue_id, older)
                           .order_by(Event.timestamp.desc(), Event.id.desc()).limit(1))
        next_id = s.scalar(select(Event.event_id).where(Event.issue_id == issue_id, newer)
                           .order_by(Event.timestamp, Event.id).limit(1))
        return {"event": event_dict(ev), "prev": prev_id, "next": next_id, "total": total}


def event_body(store: KeyValueStore, project_id: int, event_id: str) -> dict[str, Any] | None:
    """The stored (normalized, scrubbed) event, or None when the body is gone (retention, outage)."""
    raw = store.get(body_key(project_id, event_id))
    if raw is None:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
