"""The event pipeline: process -> save (-> post_process), batch tasks end to end.

Messages carry references (project, event id, receive time), never bodies; the body lives in the
KV store at ``{project_id}/{event_id}``. An event crosses two queues in the common case:
``events.process`` (CPU: normalize, scrub, fingerprint; one ``get_many`` and one ``put_many`` per
batch) and ``events.save`` (database: set-based SQL, one transaction per batch), each scalable on
its own. ``events.post_process`` only sees events that have something to tell (first seen,
regression). ``events.store_blob`` carries bodies the store could not take at ingest.

Every step is idempotent, so a redelivery after a crash (RabbitMQ replays recently acked messages
after a ``kill -9`` of a node) changes nothing: normalizing a normalized body is a no-op, the body
key is deterministic, and the event row is unique.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import tuple_, update

from eventpipe.errors import EventpipeError
from eventpipe.kvstore import KVCorrupt
from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Activity
from eventpipe.metadata.save import EventRow, save_events
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.metadata.grouping_rules import rules_for_projects
from eventpipe.pipeline.fingerprint_rules import grouping_hash
from eventpipe.pipeline.grouping import title_and_culprit
from eventpipe.pipeline.keys import body_key
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import scrub_event
from eventpipe.pipeline.trim import trim_event
from eventpipe.notify.rules import watches_every_event
from eventpipe.tasks.api import Item, ItemFailures, PermanentError, TaskContext, task
from eventpipe.tasks.notify import evaluate


class MissingBody(EventpipeError):
    """The body is not (yet) in the store: retried, since a lagging replica or an outage can cause it."""

    retryable = True


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@task("events.process", queue="events", batch=True, batch_size=200, throws=(InvalidEvent, KVCorrupt))
def process(ctx: TaskContext, items: list[Item]) -> ItemFailures:
    """Normalize, mark in-app frames, trim oversized parts, scrub secrets, fingerprint; store the
    clean bodies (one ``get_many`` and one ``put_many`` per batch)."""
    keys = [body_key(it["project_id"], it["event_id"]) for it in items]
    bodies = ctx.store.get_many(keys)
    rules = rules_for_projects(ctx.db, {it["project_id"] for it in items})  # server-side fingerprint rules
    failures: dict[int, BaseException] = {}
    clean: dict[str, bytes] = {}
    saves: list[Item] = []
    for index, (it, key) in enumerate(zip(items, keys, strict=True)):
        raw = bodies.get(key)
        if raw is None:
            failures[index] = MissingBody(f"no body at {key!r} in {ctx.store.url}")
            continue
        try:
            data = orjson.loads(raw)
            event = scrub_event(trim_event(normalize_event(data, project_id=it["project_id"], received=it["received"])))
            if event["event_id"] != it["event_id"]:
                raise PermanentError(f"body at {key!r} has event_id {event['event_id']!r}")
        except orjson.JSONDecodeError as exc:
            failures[index] = PermanentError(f"body at {key!r} is not JSON: {exc}")
            continue
        except (InvalidEvent, PermanentError) as exc:
            failures[index] = exc
            continue
        body = orjson.dumps(event)
        clean[key] = body
        title, culprit = title_and_culprit(event)
        saves.append(
            {
                "project_id": it["project_id"],
                "event_id": it["event_id"],
                "fingerprint": grouping_hash(event, rules[it["project_id"]]),
                "title": title,
                "culprit": culprit,
                "level": event["level"],
                "platform": event["platform"],
                "timestamp": event["timestamp"],
                "received": it["received"],
                "size": len(body),
            }
        )
    if clean:
        ctx.store.put_many(clean)
        save.send_many(ctx, saves)
    return ItemFailures(failures)


@task("events.store_blob", queue="events.store", max_retries=20, min_backoff_ms=1000, max_backoff_ms=60_000)
def store_blob(ctx: TaskContext, *, project_id: int, event_id: str, received: float, body: str) -> None:
    """Write a body the ingest could not store (body store down) and continue the pipeline.
    Retries with backoff through an outage; the put is idempotent (deterministic key)."""
    ctx.store.put(body_key(project_id, event_id), body.encode())
    process.send(ctx, project_id=project_id, event_id=event_id, received=received)


@task("events.save", queue="events.save", batch=True, batch_size=500)
def save(ctx: TaskContext, items: list[Item]) -> None:
    """Upsert issues, insert event rows once, count, detect regressions: one transaction per batch.

    A redelivered batch inserts nothing and counts nothing; events whose activity was not handed
    over yet are handed over again (post-processing is idempotent)."""
    rows = [
        EventRow(
            project_id=it["project_id"],
            event_id=it["event_id"],
            fingerprint=it["fingerprint"],
            title=it["title"],
            culprit=it["culprit"],
            level=it["level"],
            platform=it["platform"],
            timestamp=_dt(it["timestamp"]),
            received=_dt(it["received"]),
            size=it["size"],
        )
        for it in items
    ]
    with ctx.db.session() as s:
        outcome = save_events(s, rows, utcnow())
    handovers = list(outcome.handovers)
    # Projects with a rule on every event (every_event, frequency) need every new event told;
    # the others only the events with activity (first seen, regression).
    told = {(h.project_id, h.event_id) for h in handovers}
    watching = {p for p in {h.project_id for h in outcome.new} if watches_every_event(ctx.db, p)}
    handovers += [h for h in outcome.new if h.project_id in watching and (h.project_id, h.event_id) not in told]
    if handovers:
        post_process.send_many(
            ctx,
            [
                {"project_id": h.project_id, "event_id": h.event_id, "issue_id": h.issue_id, "level": h.level, "kinds": list(h.kinds)}
                for h in handovers
            ],
        )


@task("events.post_process", queue="events.post", batch=True, batch_size=500)
def post_process(ctx: TaskContext, items: list[Item]) -> None:
    """Evaluate the projects' alert rules for these events, then mark their first-seen and
    regression activity handed over (compare-and-set on ``notified_at``). Rule firing is recorded
    once per rule and event, so a redelivery notifies nothing twice."""
    evaluate(ctx, items)  # alert rules: throttled by compare-and-set, recorded once per rule and event
    keys = [(it["issue_id"], it["event_id"]) for it in items if it.get("kinds")]
    if keys:
        with ctx.db.session() as s:
            s.execute(
                update(Activity)
                .where(tuple_(Activity.issue_id, Activity.event_id).in_(keys), Activity.notified_at.is_(None))
                .values(notified_at=utcnow())
            )
