"""Read-side queries for looking at issues one by one: filtered lists, 24 h counts from the
rollups, an issue's events in order, its activity, and an event's body from the KV store.

The web console reads through these (and :mod:`eventpipe.metadata.queries`); nothing here writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, or_, select

from eventpipe.kvstore import KeyValueStore
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.rollup import buckets_between

from .db import Database, utcnow
from .models import Activity, Event, GroupHash, Issue, Rollup

SORTS = {"last_seen": Issue.last_seen.desc(), "count": Issue.times_seen.desc(), "first_seen": Issue.first_seen.desc()}
STATUSES = ("unresolved", "resolved", "ignored")
LEVELS = ("fatal", "error", "warning", "info", "debug")
RECENT = timedelta(hours=24)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat() + "Z"


def issue_dict(i: Issue) -> dict[str, Any]:
    return {
        "id": i.id, "project_id": i.project_id, "fingerprint_hash": i.fingerprint_hash, "title": i.title,
        "culprit": i.culprit, "level": i.level, "status": i.status, "count": i.times_seen,
        "users": getattr(i, "users_seen", None),  # shown when the schema counts users
        "first_seen": _iso(i.first_seen), "last_seen": _iso(i.last_seen), "resolved_at": _iso(i.resolved_at),
    }


def list_issues(db: Database, *, project_id: int | None = None, status: str | None = None, level: str | None = None,
                text: str | None = None, sort: str = "last_seen", limit: int = 100,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Issues matching the filters, each flagged ``new`` (first seen in the last 24 h) or
    ``regressed`` (a regression recorded in the last 24 h while still unresolved)."""
    t = now or utcnow()
    q = select(Issue).order_by(SORTS.get(sort, SORTS["last_seen"]), Issue.id).limit(limit)
    if project_id is not None:
        q = q.where(Issue.project_id == project_id)
    if status:
        q = q.where(Issue.status == status)
    if level:
        q = q.where(Issue.level == level)
    if text:
        like = f"%{text.lower()}%"
        q = q.where(or_(func.lower(Issue.title).like(like), func.lower(Issue.culprit).like(like)))
    with db.session() as s:
        rows = [issue_dict(i) for i in s.scalars(q)]
        ids = [r["id"] for r in rows]
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


def get_issue(db: Database, issue_id: int) -> dict[str, Any] | None:
    with db.session() as s:
        i = s.get(Issue, issue_id)
        return None if i is None else issue_dict(i)


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


def issue_activity(db: Database, issue_id: int) -> list[dict[str, Any]]:
    with db.session() as s:
        return [{"kind": a.kind, "event_id": a.event_id, "at": _iso(a.created_at), "notified_at": _iso(a.notified_at)}
                for a in s.scalars(select(Activity).where(Activity.issue_id == issue_id).order_by(Activity.created_at, Activity.id))]


def issue_hashes(db: Database, issue_id: int) -> list[str]:
    """Every fingerprint hash the issue owns (``group_hashes``), or its own hash when none is recorded."""
    with db.session() as s:
        hashes = list(s.scalars(select(GroupHash.hash).where(GroupHash.issue_id == issue_id).order_by(GroupHash.id)))
        if not hashes:
            own = s.scalar(select(Issue.fingerprint_hash).where(Issue.id == issue_id))
            hashes = [own] if own else []
    return hashes
