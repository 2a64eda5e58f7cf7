"""The event pipeline wired the way the reference system wired it in 2017, as the peer a user
would otherwise pick: three Celery tasks, ``preprocess_event -> process_event -> save_event``,
one event per message, ``acks_late``, each on its own queue, prefork workers.

The work is eventpipe's own: the body comes from and goes back to the same kind of KV store the
eventpipe row uses (its default embedded body store, through ``eventpipe.kvstore.open_store``),
the domain functions are eventpipe's pure ones (normalize, scrub, fingerprint, title), and the
rows go into the same SQL models (``Issue``, ``Event``, ``BufferedCounter``) on Postgres. What a
2017 task did per event, this does per event: ``save_event`` looks the issue up (one SELECT;
INSERT when new), inserts the event row (the unique key absorbs a redelivery), buffers the
counter and commits: one transaction per event. JSON, not pickle, is the only change.

    BENCH_CP_PREFIX=q. BENCH_CP_DB=postgresql+psycopg://... BENCH_CP_KV=sqlite:///.../bodies.sqlite3 \\
        celery -A benchmarks.celery_pipeline worker -P prefork -c 2 -Q q.events.preprocess_event,...
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import orjson
from celery import Celery
from celery.signals import worker_process_init
from kombu import Exchange, Queue
from sqlalchemy import create_engine, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

# imported in the parent, before the pool forks, as eventpipe's workers import theirs at start-up
from eventpipe.kvstore import open_store
from eventpipe.metadata.models import BufferedCounter, Event, Issue
from eventpipe.pipeline.grouping import fingerprint_hash, title_and_culprit
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import scrub_event

PREFIX = os.environ.get("BENCH_CP_PREFIX", "bench-cp.")
STAGES = ("preprocess_event", "process_event", "save_event")
QUEUES = {stage: f"{PREFIX}events.{stage}" for stage in STAGES}

app = Celery("bench_pipeline", broker=os.environ.get("BENCH_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_queues=[Queue(q, Exchange(q), routing_key=q) for q in QUEUES.values()],
    task_routes={f"bench.cp.{stage}": {"queue": q, "exchange": q, "routing_key": q} for stage, q in QUEUES.items()},
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),  # Celery's default
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)

_resources: dict[str, Any] = {}


def _res() -> dict[str, Any]:
    """Engine and store, opened once per (forked) process."""
    if _resources.get("pid") != os.getpid():
        _resources.update(
            pid=os.getpid(),
            engine=create_engine(os.environ["BENCH_CP_DB"], pool_size=2),
            store=open_store(os.environ["BENCH_CP_KV"]),
        )
    return _resources


@worker_process_init.connect
def _open_in_child(**_kwargs: Any) -> None:
    """Connect when the pool process starts, not in the first (timed) task."""
    if os.environ.get("BENCH_CP_DB"):
        with _res()["engine"].connect():
            pass


def _load(project_id: int, event_id: str) -> Any:
    raw = _res()["store"].get(f"{project_id}/{event_id}")
    if raw is None:
        raise LookupError(f"no body for {project_id}/{event_id}")
    return orjson.loads(raw)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


@app.task(name="bench.cp.preprocess_event")
def preprocess_event(project_id: int, event_id: str, received: float) -> None:
    """2017: load the event from the cache, decide whether it needs processing, pass it on."""
    _load(project_id, event_id)
    process_event.delay(project_id=project_id, event_id=event_id, received=received)


@app.task(name="bench.cp.process_event")
def process_event(project_id: int, event_id: str, received: float) -> None:
    """Normalize and scrub with eventpipe's functions, write the body back, pass it on."""
    event = scrub_event(normalize_event(_load(project_id, event_id), project_id=project_id, received=received))
    _res()["store"].put(f"{project_id}/{event_id}", orjson.dumps(event))
    save_event.delay(project_id=project_id, event_id=event_id, received=received)


@app.task(name="bench.cp.save_event")
def save_event(project_id: int, event_id: str, received: float) -> None:
    """Group and store one event: one issue SELECT (+INSERT when new), one event INSERT, one
    counter row, one commit, as ``EventManager.save`` did per event."""
    event = _load(project_id, event_id)
    fingerprint = fingerprint_hash(event)
    ts = _dt(event["timestamp"])
    with Session(_res()["engine"]) as s, s.begin():
        issue_id = s.scalar(select(Issue.id).where(Issue.project_id == project_id, Issue.fingerprint_hash == fingerprint))
        if issue_id is None:
            title, culprit = title_and_culprit(event)
            s.execute(
                insert(Issue).values(
                    project_id=project_id, fingerprint_hash=fingerprint, title=title[:512], culprit=culprit[:512],
                    level=event["level"], status="unresolved", first_seen=ts, last_seen=ts, times_seen=0,
                ).on_conflict_do_nothing()
            )
            issue_id = s.scalar(select(Issue.id).where(Issue.project_id == project_id, Issue.fingerprint_hash == fingerprint))
        row: dict[str, Any] = {
            "project_id": project_id, "event_id": event_id, "issue_id": issue_id, "timestamp": ts, "received_at": _dt(received),
            "kv_key": f"{project_id}/{event_id}", "size": len(orjson.dumps(event)), "platform": event["platform"], "level": event["level"],
        }
        if "fingerprint" in Event.__table__.c:
            row["fingerprint"] = fingerprint
        inserted = s.execute(insert(Event).values(**row).on_conflict_do_nothing().returning(Event.id)).first()
        if inserted is not None:
            s.execute(insert(BufferedCounter).values(project_id=project_id, issue_id=issue_id, delta=1, seen_at=ts))
