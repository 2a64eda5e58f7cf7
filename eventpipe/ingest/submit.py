"""Accepting events: validate, dedupe, store the body, publish a reference.

Guarantees: an event reported *accepted* had its message confirmed by the broker (or, in the
embedded mode, queued in-process). A failure to publish raises :class:`SubmitError` and records
nothing, so the caller can resend the same event id. Ingest dedupe is recorded only after the
publish, so a failed publish never makes a retry look like a duplicate; the unique event row in
``events.save`` is the final dedupe for races between concurrent submits of one id.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy.exc
from sqlalchemy import select

from eventpipe.errors import EventpipeError
from eventpipe.kvstore import KVUnavailable
from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import AcceptedEvent, Event, Project
from eventpipe.metadata.repo import insert_ignore
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.normalize import normalize_event

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime


class SubmitError(EventpipeError, RuntimeError):
    """Nothing was accepted; resending the same events is safe."""


class UnknownProject(InvalidEvent):
    def __init__(self, project_id: Any) -> None:
        super().__init__("unknown_project", "project_id", f"no project {project_id!r}; create it with `eventpipe projects add`")


@dataclass
class Rejection:
    index: int
    reason: str
    field: str
    detail: str


@dataclass
class SubmitResult:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    deferred_bodies: int = 0  # bodies sent through events.store_blob because the store was down

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected))

    def merge(self, other: SubmitResult, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += [Rejection(r.index + offset, r.reason, r.field, r.detail) for r in other.rejected]
        self.deferred_bodies += other.deferred_bodies


def submit(rt: Runtime, project_id: int, event: Any) -> str:
    """Submit one event; returns its event id. Raises InvalidEvent (bad input) or SubmitError."""
    result = submit_many(rt, project_id, [event])
    if result.rejected:
        r = result.rejected[0]
        raise InvalidEvent(r.reason, r.field, r.detail)
    return (result.accepted or result.duplicates)[0]


def submit_many(rt: Runtime, project_id: int, events: Sequence[Any]) -> SubmitResult:
    """Validate, dedupe, store and publish a batch of one project's events.

    A database outage raises :class:`SubmitError` too: before the publish nothing was accepted;
    after it, the events are queued and a resend is absorbed by the unique event row in save."""
    try:
        return _submit_many(rt, project_id, events)
    except sqlalchemy.exc.OperationalError as exc:
        raise SubmitError(f"the metadata database is unreachable ({type(exc.orig).__name__}); resend the events") from exc


def _submit_many(rt: Runtime, project_id: int, events: Sequence[Any]) -> SubmitResult:
    result = SubmitResult()
    received = time.time()
    if not _project_exists(rt, project_id):
        unknown = UnknownProject(project_id)
        result.rejected = [Rejection(i, unknown.reason, unknown.field, unknown.detail) for i in range(len(events))]
        return result
    candidates: dict[str, bytes] = {}
    for index, data in enumerate(events):
        try:
            body = data if isinstance(data, (bytes, bytearray)) else orjson.dumps(data)
            if len(body) > rt.settings.max_event_bytes:
                raise InvalidEvent("too_large", "$", f"{len(body)} bytes exceeds the {rt.settings.max_event_bytes}-byte limit")
            parsed = orjson.loads(body) if isinstance(data, (bytes, bytearray)) else data
            event_id = normalize_event(parsed, project_id=project_id, received=received)["event_id"]
            if isinstance(parsed, dict) and parsed.get("event_id") != event_id:
                parsed = {**parsed, "event_id": event_id}  # canonical id in the stored body
                body = orjson.dumps(parsed)
        except InvalidEvent as exc:
            result.rejected.append(Rejection(index, exc.reason, exc.field, exc.detail))
            continue
        except (orjson.JSONDecodeError, TypeError) as exc:
            result.rejected.append(Rejection(index, "invalid_json", "$", str(exc)))
            continue
        if event_id in candidates:
            result.duplicates.append(event_id)
        else:
            candidates[event_id] = body
    if not candidates:
        return result
    seen = _already_accepted(rt, project_id, list(candidates))
    result.duplicates += [eid for eid in candidates if eid in seen]
    fresh = {eid: body for eid, body in candidates.items() if eid not in seen}
    if not fresh:
        return result
    try:
        rt.store.put_many({body_key(project_id, eid): body for eid, body in fresh.items()})
        task_name = "events.preprocess"
        refs = [{"project_id": project_id, "event_id": eid, "received": received} for eid in fresh]
    except KVUnavailable:
        # The body store is down: carry the body in the message once, events.store_blob retries it.
        task_name = "events.store_blob"
        refs = [
            {"project_id": project_id, "event_id": eid, "received": received, "body": body.decode()}
            for eid, body in fresh.items()
        ]
        result.deferred_bodies = len(refs)
    try:
        rt.enqueue_many(task_name, refs)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the caller must resend
        raise SubmitError(f"publishing {len(refs)} events failed, nothing was accepted; resend them ({exc})") from exc
    now = utcnow()
    with rt.db.session() as s:
        insert_ignore(
            s,
            AcceptedEvent,
            [{"project_id": project_id, "event_id": eid, "accepted_at": now} for eid in fresh],
            ["project_id", "event_id"],
        )
    result.accepted += list(fresh)
    return result


def _project_exists(rt: Runtime, project_id: Any) -> bool:
    if not isinstance(project_id, int) or isinstance(project_id, bool):
        return False
    with rt.db.session() as s:
        return s.get(Project, project_id) is not None


def _already_accepted(rt: Runtime, project_id: int, event_ids: Iterable[str]) -> set[str]:
    ids = list(event_ids)
    found: set[str] = set()
    with rt.db.session() as s:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found.update(
                s.scalars(
                    select(AcceptedEvent.event_id).where(
                        AcceptedEvent.project_id == project_id, AcceptedEvent.event_id.in_(chunk)
                    )
                )
            )
            found.update(
                s.scalars(select(Event.event_id).where(Event.project_id == project_id, Event.event_id.in_(chunk)))
            )
    return found


__all__ = ["Rejection", "SubmitError", "SubmitResult", "submit", "submit_many"]
