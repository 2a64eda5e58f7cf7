"""Accepting events: validate, store the bodies, publish references — per batch, not per event.

Guarantees: an event reported *accepted* had its message confirmed by the broker (or, in the
embedded mode, queued in-process). A failure to publish raises :class:`SubmitError` and reports
nothing accepted, so the caller can resend the same event ids.

Cost: no SQL transaction per request. The project check reads a cache (refreshed every few
seconds); duplicates are dropped within the batch, and a resent event id is absorbed by the unique
event row at save, as the reference system did. Concurrent callers are coalesced
(:meth:`Submitter.submit_coalesced` from threads, :class:`~eventpipe.ingest.batcher.AsyncGroupCommit`
in the HTTP server): one ``put_many`` of bodies and one confirmed publish for all of them, each
caller answered once *its* batch is confirmed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy.exc
from sqlalchemy import select

from eventpipe.errors import EventpipeError
from eventpipe.kvstore import KVUnavailable
from eventpipe.metadata.db import Database
from eventpipe.metadata.models import Project
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.normalize import event_id_of
from eventpipe.tasks.api import TaskContext
from eventpipe.tasks.batching import GroupCommit
from eventpipe.tasks.events import process, store_blob


class SubmitError(EventpipeError, RuntimeError):
    """Nothing was accepted; resending the same events is safe."""

    retryable = True
    exit_code = 3


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


class ProjectCache:
    """Which project ids exist, refreshed at most every ``ttl_s`` (a missing id every ``miss_ttl_s``,
    so a project created a moment ago is found quickly)."""

    def __init__(self, db: Database, *, ttl_s: float = 30.0, miss_ttl_s: float = 1.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.miss_ttl_s = miss_ttl_s
        self._known: set[int] = set()
        self._loaded = 0.0
        self._lock = threading.Lock()

    def exists(self, project_id: Any) -> bool:
        if not isinstance(project_id, int) or isinstance(project_id, bool):
            return False
        age = time.monotonic() - self._loaded
        if project_id in self._known and age < self.ttl_s:
            return True
        if project_id not in self._known and age < self.miss_ttl_s:
            return False
        with self._lock:
            with self.db.session() as s:
                self._known = set(s.scalars(select(Project.id)))
            self._loaded = time.monotonic()
        return project_id in self._known


Batch = tuple[int, Sequence[Any]]


class Submitter:
    """Accepts events for one runtime context; keeps the project cache and the thread coalescer."""

    def __init__(self, ctx: TaskContext, *, max_wait_s: float = 0.002) -> None:
        self.ctx = ctx
        self.projects = ProjectCache(ctx.db)
        self._group: GroupCommit[Batch, SubmitResult | SubmitError] = GroupCommit(
            self.submit_batches, max_batch=256, max_wait_s=max_wait_s
        )

    def submit_many(self, project_id: int, events: Sequence[Any]) -> SubmitResult:
        """Validate, store and publish one project's events (already a batch: not coalesced)."""
        return _raise(self.submit_batches([(project_id, events)])[0])

    def submit_coalesced(self, project_id: int, events: Sequence[Any]) -> SubmitResult:
        """Like :meth:`submit_many`, sharing one store write and one publish with concurrent callers."""
        return _raise(self._group.submit((project_id, events)))

    def submit_batches(self, batches: Sequence[Batch]) -> list[SubmitResult | SubmitError]:
        """Accept several callers' events with one ``put_many`` and one confirmed publish.
        Never raises: a failure is returned to every caller of the batch as a SubmitError."""
        received = time.time()
        results = [SubmitResult() for _ in batches]
        bodies: dict[str, bytes] = {}
        refs: list[dict[str, Any]] = []
        owners: list[int] = []
        try:
            for n, (project_id, events) in enumerate(batches):
                self._validate(project_id, events, received, results[n], bodies, refs)
                owners += [n] * (len(refs) - len(owners))
        except sqlalchemy.exc.OperationalError as exc:
            error = SubmitError(f"the metadata database is unreachable ({type(exc.orig).__name__}); resend the events")
            return [error for _ in batches]
        if not refs:
            return list(results)
        try:
            self.ctx.store.put_many(bodies)
            task, items = process, refs
        except KVUnavailable:
            # The body store is down: carry each body in its message once; events.store_blob retries it.
            task = store_blob
            items = [{**ref, "body": bodies[body_key(ref["project_id"], ref["event_id"])].decode()} for ref in refs]
            for n in owners:
                results[n].deferred_bodies += 1
        try:
            self.ctx.enqueue_many(task, items)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the callers must resend
            error = SubmitError(f"publishing {len(items)} events failed, nothing was accepted; resend them ({exc})")
            return [error if results[n].accepted else results[n] for n in range(len(batches))]
        return list(results)

    def _validate(
        self,
        project_id: int,
        events: Sequence[Any],
        received: float,
        result: SubmitResult,
        bodies: dict[str, bytes],
        refs: list[dict[str, Any]],
    ) -> None:
        if not self.projects.exists(project_id):
            unknown = UnknownProject(project_id)
            result.rejected = [Rejection(i, unknown.reason, unknown.field, unknown.detail) for i in range(len(events))]
            return
        limit = self.ctx.settings.max_event_bytes
        for index, data in enumerate(events):
            try:
                body = bytes(data) if isinstance(data, (bytes, bytearray)) else orjson.dumps(data)
                if len(body) > limit:
                    raise InvalidEvent("too_large", "$", f"{len(body)} bytes exceeds the {limit}-byte limit")
                parsed = orjson.loads(body) if isinstance(data, (bytes, bytearray)) else data
                # Only what cannot be an event is refused here (everything else is repaired, and
                # recorded in the event's errors, by the processing stage, which normalizes once).
                if not isinstance(parsed, dict):
                    raise InvalidEvent("not_an_object", "$", f"an event must be a JSON object, got {type(parsed).__name__}")
                event_id = event_id_of(parsed)
                if parsed.get("event_id") != event_id:
                    body = orjson.dumps({**parsed, "event_id": event_id})  # the canonical id in the stored body
            except InvalidEvent as exc:
                result.rejected.append(Rejection(index, exc.reason, exc.field, exc.detail))
                continue
            except (orjson.JSONDecodeError, TypeError) as exc:
                result.rejected.append(Rejection(index, "invalid_json", "$", str(exc)))
                continue
            key = body_key(project_id, event_id)
            if key in bodies:
                result.duplicates.append(event_id)
                continue
            bodies[key] = body
            refs.append({"project_id": project_id, "event_id": event_id, "received": received})
            result.accepted.append(event_id)


def _raise(outcome: SubmitResult | SubmitError) -> SubmitResult:
    if isinstance(outcome, SubmitError):
        raise outcome
    return outcome


def submit(ctx: TaskContext, project_id: int, event: Any) -> str:
    """Submit one event; returns its event id. Raises InvalidEvent (bad input) or SubmitError."""
    result = submit_many(ctx, project_id, [event])
    if result.rejected:
        r = result.rejected[0]
        raise InvalidEvent(r.reason, r.field, r.detail)
    return (result.accepted or result.duplicates)[0]


def submit_many(ctx: TaskContext, project_id: int, events: Sequence[Any]) -> SubmitResult:
    """Validate, store and publish a batch of one project's events."""
    return Submitter(ctx).submit_many(project_id, events)


__all__ = ["Rejection", "SubmitError", "SubmitResult", "Submitter", "submit", "submit_many"]
