"""Re-feeding stored events: ``events.reprocess`` and ``events.backfill_enrichment``.

Both walk a project's event index in ``events.id`` order, one chunk per message, and re-enqueue
themselves with a cursor (the last id done) until they reach ``until_id``, the newest id when the
walk started (events arriving meanwhile went through the current pipeline already). A crash
redelivers the current chunk only, and every step downstream is idempotent, so a redelivery
changes nothing.

``events.reprocess`` sends the stored bodies through ``events.process`` again: after scrubbing
rules, trimming limits or normalization changed, the stored bodies are rewritten in place (the
event rows and their issues stay; moving events between issues is ``groups.regroup``'s job).
``events.backfill_enrichment`` reads the stored bodies of events saved before affected users and
tag values were recorded and hands them to ``events.record_user``/``events.index_tags``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson
from sqlalchemy import func, select

from eventpipe.metadata.models import Event
from eventpipe.pipeline.enrich import tag_pairs, user_hash
from eventpipe.tasks.api import Item, TaskContext, task
from eventpipe.tasks.enrich import index_tags, record_user
from eventpipe.tasks.events import process

CHUNK = 200


def _page(ctx: TaskContext, project_id: int, issue_id: int | None, after_id: int, until_id: int, chunk: int) -> list[Any]:
    q = select(Event.id, Event.event_id, Event.issue_id, Event.kv_key, Event.timestamp, Event.received_at).where(
        Event.project_id == project_id, Event.id > after_id, Event.id <= until_id
    )
    if issue_id is not None:
        q = q.where(Event.issue_id == issue_id)
    with ctx.db.session() as s:
        return list(s.execute(q.order_by(Event.id).limit(chunk)).all())


def newest_id(ctx: TaskContext, project_id: int) -> int:
    with ctx.db.session() as s:
        return int(s.scalar(select(func.max(Event.id)).where(Event.project_id == project_id)) or 0)


@task("events.reprocess", queue="events.reprocess", max_retries=10)
def reprocess(
    ctx: TaskContext, *, project_id: int, issue_id: int | None = None, after_id: int = 0, until_id: int | None = None, chunk: int = CHUNK
) -> int:
    """Send one chunk of a project's (or an issue's) stored events through events.process again,
    then re-enqueue for the next chunk; returns the events sent by this chunk."""
    until = newest_id(ctx, project_id) if until_id is None else until_id
    rows = _page(ctx, project_id, issue_id, after_id, until, chunk)
    if rows:
        process.send_many(
            ctx,
            [{"project_id": project_id, "event_id": r.event_id, "received": r.received_at.replace(tzinfo=UTC).timestamp()} for r in rows],
        )
    if len(rows) == chunk:
        reprocess.send(ctx, project_id=project_id, issue_id=issue_id, after_id=rows[-1].id, until_id=until, chunk=chunk)
    return len(rows)


@task("events.backfill_enrichment", queue="events.reprocess", max_retries=10)
def backfill_enrichment(ctx: TaskContext, *, project_id: int, after_id: int = 0, until_id: int | None = None, chunk: int = CHUNK) -> int:
    """Record affected users and tag values of one chunk of already stored events (from their
    bodies), then re-enqueue for the next chunk; returns the bodies read by this chunk."""
    until = newest_id(ctx, project_id) if until_id is None else until_id
    rows = _page(ctx, project_id, None, after_id, until, chunk)
    bodies = ctx.store.get_many([r.kv_key for r in rows]) if rows else {}
    users: list[Item] = []
    tags: list[Item] = []
    for r in rows:
        raw = bodies.get(r.kv_key)
        if raw is None:
            continue  # body gone (retention racing us): nothing to record
        event = orjson.loads(raw)
        ref = {"project_id": project_id, "event_id": r.event_id, "issue_id": r.issue_id,
               "timestamp": r.timestamp.replace(tzinfo=UTC).timestamp()}
        if (user := user_hash(event)) is not None:
            users.append({**ref, "user_hash": user})
        if pairs := tag_pairs(event):
            tags.append({**ref, "tags": pairs})
    if users:
        record_user.send_many(ctx, users)
    if tags:
        index_tags.send_many(ctx, tags)
    if len(rows) == chunk:
        backfill_enrichment.send(ctx, project_id=project_id, after_id=rows[-1].id, until_id=until, chunk=chunk)
    return len(bodies)
