"""Publishers of the pipeline rows, each run in its own process by ``benchmarks.publish`` (so its
CPU is measured apart): the Celery pipeline's ingest, the reference messages of the limit row, and
the fixed-rate submitter of the steady-latency row, and the large-event rows (a file of ~50 KB
events submitted in chunks; in the embedded mode also processed here). Each returns a dict printed
as one JSON line.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections import defaultdict
from typing import Any

import orjson
import psutil


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def celery_pipeline(args: list[str]) -> dict[str, Any]:
    """The demo events (the eventpipe row's generator and seed) sent the 2017 way: validate at
    ingest, bodies to the KV store (one ``put_many`` per chunk of 1,000, as eventpipe does), then
    one ``preprocess_event`` message per event. Returns the distinct event ids sent."""
    n, seed = int(args[0]), int(args[1])
    from benchmarks.celery_pipeline import QUEUES, app, preprocess_event
    from eventpipe.kvstore import open_store
    from eventpipe.pipeline.demo import generate
    from eventpipe.pipeline.errors import InvalidEvent
    from eventpipe.pipeline.normalize import normalize_event

    store = open_store(os.environ["BENCH_CP_KV"])
    with app.connection_for_write() as conn:
        for q in app.amqp.queues.values():
            q(conn.default_channel).declare()
    events = generate(n, seed, now=time.time())
    sent: set[str] = set()
    rejected = 0
    c0, t0 = _cpu(), time.time()
    with app.producer_or_acquire() as producer:
        for start in range(0, len(events), 1000):
            received = time.time()
            bodies: dict[str, bytes] = {}
            refs: list[tuple[int, str]] = []
            for ev in events[start : start + 1000]:
                try:
                    event_id = normalize_event(ev.payload, project_id=ev.project_id, received=received)["event_id"]
                except InvalidEvent:
                    rejected += 1
                    continue
                payload = {**ev.payload, "event_id": event_id}
                bodies[f"{ev.project_id}/{event_id}"] = orjson.dumps(payload)
                refs.append((ev.project_id, event_id))
            store.put_many(bodies)
            for project_id, event_id in refs:
                preprocess_event.apply_async(
                    kwargs={"project_id": project_id, "event_id": event_id, "received": received}, producer=producer,
                    queue=QUEUES["preprocess_event"],
                )
                sent.add(f"{project_id}/{event_id}")
    t1 = time.time()
    cpu = _cpu() - c0
    store.close()
    return {"accepted": len(sent), "rejected": rejected, "t0": t0, "t1": t1, "cpu_s": cpu}


def limit(args: list[str]) -> dict[str, Any]:
    """N small reference messages (project, event id, receive time), published with raw pika and
    a confirm window of 1,000: what the limit consumer turns into event rows."""
    from benchmarks.common import AMQP_URL, windowed_publish

    n, queue = int(args[0]), args[1]
    projects = [int(p) for p in os.environ.get("BENCH_PROJECTS", "1").split(",")]

    def bodies() -> Any:
        for i in range(n):
            yield orjson.dumps({"project_id": projects[i % len(projects)], "event_id": uuid.uuid4().hex, "received": time.time()})

    c0, t0 = _cpu(), time.time()
    confirmed = windowed_publish(AMQP_URL, queue, bodies(), window=1000)
    return {"accepted": confirmed, "t0": t0, "t1": time.time(), "cpu_s": _cpu() - c0}


def steady(args: list[str]) -> dict[str, Any]:
    """Submit demo events at a fixed rate for a fixed time through ``submit_many``: every tick,
    the events due by then, one call per project. If a call takes longer than a tick the
    submitter falls behind; the largest lag is reported (and makes the figures invalid if large)."""
    from benchmarks.publish import accepted_ids, submit_many_compat
    from eventpipe.pipeline.demo import generate

    rate, seconds, seed, tick_ms = float(args[0]), float(args[1]), int(args[2]), float(args[3])
    submit = submit_many_compat()
    total = int(rate * seconds)
    events = generate(total, seed, now=time.time())
    with contextlib.suppress(Exception):  # a core that refuses empty batches: the first tick connects
        submit(events[0].project_id, [])  # connect outside the timed part (an empty batch)
    accepted: set[tuple[int, str]] = set()
    sent = 0
    max_lag = 0.0
    c0, t0 = _cpu(), time.time()
    m0 = time.monotonic()
    tick = tick_ms / 1000
    next_tick = m0
    while sent < total:
        now = time.monotonic()
        due = min(total, int(rate * (now - m0)) + 1)
        if due > sent:
            max_lag = max(max_lag, now - (m0 + sent / rate))
            by_project: dict[int, list[Any]] = defaultdict(list)
            for ev in events[sent:due]:
                by_project[ev.project_id].append(ev.payload)
            for pid, items in by_project.items():
                accepted |= accepted_ids(pid, submit(pid, items))
            sent = due
        next_tick += tick
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    t1 = time.time()
    return {"accepted": len(accepted), "sent": sent, "t0": t0, "t1": t1, "cpu_s": _cpu() - c0, "max_lag_s": max_lag,
            "rate": sent / (t1 - t0)}


def large_file(args: list[str]) -> dict[str, Any]:
    """Submit the first N lines of a JSON-lines file of events (project 1, as ``generate(..., large=True)`` makes them)
    through ``eventpipe.submit_many`` in chunks, parsing each line as `eventpipe send` parses a
    file. ``embedded`` = "1": the broker lives in this process, so it then runs
    ``broker.run_until_idle(threads=4)`` as `eventpipe demo` does, and the figures cover submit
    and processing; the CPU and memory reported are this process's."""
    import resource

    from benchmarks.publish import accepted_ids, submit_many_compat
    from eventpipe.metadata.queries import ensure_project, totals
    from eventpipe.pipeline.demo import DEMO_PROJECTS
    from eventpipe.runtime import open_runtime

    n, path, embedded, chunk = int(args[0]), args[1], args[2] == "1", int(args[3])
    rt = open_runtime()
    for pid, (name, _platform) in DEMO_PROJECTS.items():
        ensure_project(rt.db, pid, name)
    submit = submit_many_compat()
    accepted: set[tuple[int, str]] = set()
    raw_bytes = 0
    c0, t0 = _cpu(), time.time()
    with open(path, "rb") as f:
        batch: list[Any] = []
        for i, line in enumerate(f):
            if i >= n:
                break
            raw_bytes += len(line) - 1
            batch.append(orjson.loads(line))
            if len(batch) >= chunk:
                accepted |= accepted_ids(1, submit(1, batch))
                batch = []
        if batch:
            accepted |= accepted_ids(1, submit(1, batch))
    t1 = time.time()
    out: dict[str, Any] = {"accepted": len(accepted), "raw_bytes": raw_bytes, "t0": t0, "t1": t1}
    if embedded:
        rt.broker.run_until_idle(threads=4)
        out["t_done"] = time.time()
        out["saved"] = totals(rt.db)["events_stored"]
        out["rss_mb"] = psutil.Process().memory_info().rss / 2**20
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["cpu_s"] = _cpu() - c0
    rt.close()
    return out
