"""The event pipeline: preprocess -> process -> save -> post_process (store_blob when the body
store was down at ingest).

Messages carry references (project, event id, receive time), never bodies; the body lives in the
KV store at ``{project_id}/{event_id}``. Every step is idempotent, so a redelivery after a crash
(RabbitMQ replays recently acked messages after kill -9, DESIGN.md §7) changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, update

from eventpipe.errors import EventpipeError
from eventpipe.kvstore import KVCorrupt
from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Activity, BufferedCounter, Event, Issue
from eventpipe.metadata.repo import insert_ignore
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.grouping import fingerprint_hash, title_and_culprit
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import scrub_event
from eventpipe.tasks.api import PermanentError, task
from eventpipe.tasks.batching import GroupCommit

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime


class MissingBody(EventpipeError):
    """The body is not (yet) in the store: retried, since a lagging replica or an outage can cause it."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def _load(rt: Runtime, project_id: int, event_id: str) -> Any:
    key = body_key(project_id, event_id)
    raw = rt.store.get(key)
    if raw is None:
        raise MissingBody(f"no body at {key!r} in {rt.store.url}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"body at {key!r} is not JSON: {exc}") from None


def _second_delivery() -> bool:
    """True when this message may have been worked on before (broker redelivery or a retry)."""
    from dramatiq.middleware import CurrentMessage

    message = CurrentMessage.get_current_message()
    if message is None:
        return True  # called outside a worker: be safe
    return bool(getattr(message, "redelivered", False) or message.options.get("retries"))


@task("events.preprocess", queue="events")
def preprocess(rt: Runtime, *, project_id: int, event_id: str, received: float) -> None:
    """Decide whether the event still needs work: a redelivered event that is already saved
    stops here. First deliveries skip the lookup; later steps are idempotent either way."""
    if _second_delivery():
        with rt.db.session() as s:
            saved = s.scalar(select(Event.id).where(Event.project_id == project_id, Event.event_id == event_id))
        if saved is not None:
            return
    rt.enqueue("events.process", project_id=project_id, event_id=event_id, received=received)


@task("events.process", queue="events", throws=(InvalidEvent, KVCorrupt))
def process(rt: Runtime, *, project_id: int, event_id: str, received: float) -> None:
    """Normalize, mark in-app frames, scrub secrets, fingerprint; store the clean body."""
    data = _load(rt, project_id, event_id)
    if isinstance(data, dict) and data.get("_normalized"):
        event = data  # already processed (redelivery after the body was rewritten)
    else:
        event = scrub_event(normalize_event(data, project_id=project_id, received=received))
        if event["event_id"] != event_id:
            raise PermanentError(f"body at {body_key(project_id, event_id)!r} has event_id {event['event_id']!r}")
        event["_normalized"] = True
    body = orjson.dumps(event)
    rt.store.put(body_key(project_id, event_id), body)
    title, culprit = title_and_culprit(event)
    rt.enqueue(
        "events.save",
        project_id=project_id,
        event_id=event_id,
        fingerprint=fingerprint_hash(event),
        title=title,
        culprit=culprit,
        level=event["level"],
        platform=event["platform"],
        timestamp=event["timestamp"],
        received=received,
        size=len(body),
    )


@task("events.store_blob", queue="events.store", max_retries=20, min_backoff_ms=1000, max_backoff_ms=60_000)
def store_blob(rt: Runtime, *, project_id: int, event_id: str, received: float, body: str) -> None:
    """Write a body the ingest could not store (body store down) and continue the pipeline.
    Retries with backoff through an outage; the put is idempotent (deterministic key)."""
    rt.store.put(body_key(project_id, event_id), body.encode())
    rt.enqueue("events.preprocess", project_id=project_id, event_id=event_id, received=received)


@task("events.save", queue="events.save")
def save(
    rt: Runtime,
    *,
    project_id: int,
    event_id: str,
    fingerprint: str,
    title: str,
    culprit: str,
    level: str,
    platform: str,
    timestamp: float,
    received: float,
    size: int,
) -> None:
    """Upsert the issue, insert the event row once, buffer its counter, detect regressions.

    The event row, its counter increment and its activity rows commit in one transaction, and the
    event row is unique: a redelivered save inserts nothing and counts nothing. Concurrent saves
    in one process share a transaction (group commit); each returns after its own commit."""
    item = SaveItem(project_id, event_id, fingerprint, title, culprit, level, platform, timestamp, received, size)
    issue_id, handover = _save_group(rt).submit(item)
    # A redelivered save (nothing inserted) may have crashed before this enqueue last time: send
    # post_process again; it is idempotent. Fresh events with no activity need no post-processing.
    if handover:
        rt.enqueue("events.post_process", project_id=project_id, event_id=event_id, issue_id=issue_id)


@dataclass(frozen=True)
class SaveItem:
    project_id: int
    event_id: str
    fingerprint: str
    title: str
    culprit: str
    level: str
    platform: str
    timestamp: float
    received: float
    size: int


_groups: dict[int, GroupCommit[SaveItem, tuple[int, bool]]] = {}
_groups_lock = threading.Lock()


def _save_group(rt: Runtime) -> GroupCommit[SaveItem, tuple[int, bool]]:
    with _groups_lock:
        group = _groups.get(id(rt))
        if group is None:
            group = _groups[id(rt)] = GroupCommit(lambda items: _save_batch(rt, items))
        return group


def _save_batch(rt: Runtime, items: Sequence[SaveItem]) -> list[tuple[int, bool]]:
    now = utcnow()
    out = []
    with rt.db.session() as s:
        for it in items:
            out.append(_save_one(s, it, now))
    return out


def _save_one(s: Any, it: SaveItem, now: datetime) -> tuple[int, bool]:
    ts = _dt(it.timestamp)
    issue_id, status = _upsert_issue(s, it.project_id, it.fingerprint, it.title, it.culprit, it.level, ts)
    inserted = insert_ignore(
        s,
        Event,
        [
            {
                "project_id": it.project_id,
                "event_id": it.event_id,
                "issue_id": issue_id,
                "timestamp": ts,
                "received_at": _dt(it.received),
                "kv_key": body_key(it.project_id, it.event_id),
                "size": it.size,
                "platform": it.platform,
                "level": it.level,
            }
        ],
        ["project_id", "event_id"],
    )
    kinds: list[str] = []
    if inserted:
        s.add(BufferedCounter(project_id=it.project_id, issue_id=issue_id, delta=1, seen_at=ts))
        if status == "new":
            kinds.append("first_seen")
        elif status == "resolved":
            # compare-and-set: only the event that flips the status records the regression
            flipped = s.execute(
                update(Issue).where(Issue.id == issue_id, Issue.status == "resolved").values(status="unresolved", resolved_at=None)
            ).rowcount
            if flipped:
                kinds.append("regression")
        if kinds:
            insert_ignore(
                s,
                Activity,
                [
                    {"project_id": it.project_id, "issue_id": issue_id, "kind": k, "event_id": it.event_id, "created_at": now}
                    for k in kinds
                ],
                ["issue_id", "kind", "event_id"],
            )
    return issue_id, (not inserted) or bool(kinds)


def _upsert_issue(s: Any, project_id: int, fingerprint: str, title: str, culprit: str, level: str, ts: datetime) -> tuple[int, str]:
    """Return (issue id, status before this event); status "new" when this call created it."""
    row = s.execute(
        select(Issue.id, Issue.status).where(Issue.project_id == project_id, Issue.fingerprint_hash == fingerprint)
    ).first()
    if row is not None:
        return row.id, row.status
    created = insert_ignore(
        s,
        Issue,
        [
            {
                "project_id": project_id,
                "fingerprint_hash": fingerprint,
                "title": title,
                "culprit": culprit,
                "level": level,
                "status": "unresolved",
                "first_seen": ts,
                "last_seen": ts,
                "times_seen": 0,
            }
        ],
        ["project_id", "fingerprint_hash"],
    )
    row = s.execute(
        select(Issue.id, Issue.status).where(Issue.project_id == project_id, Issue.fingerprint_hash == fingerprint)
    ).one()
    return row.id, "new" if created else row.status


@task("events.post_process", queue="events.post")
def post_process(rt: Runtime, *, project_id: int, event_id: str, issue_id: int) -> None:
    """Hand first-seen and regression activity of this event to notifications, once each.

    Activity rows are written by ``save`` in the event's own transaction; this step marks them
    handed over (compare-and-set on ``notified_at``), so a redelivery notifies nothing twice."""
    with rt.db.session() as s:
        rows = s.execute(
            select(Activity.id, Activity.kind).where(
                Activity.issue_id == issue_id, Activity.event_id == event_id, Activity.notified_at.is_(None)
            )
        ).all()
        for row in rows:
            s.execute(
                update(Activity).where(Activity.id == row.id, Activity.notified_at.is_(None)).values(notified_at=utcnow())
            )
