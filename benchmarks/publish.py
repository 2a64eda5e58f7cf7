"""Publisher side of the task benchmarks, run as its own process so each framework's client state
and CPU are isolated. Prints one JSON line: wall-clock start/end of the publish and its CPU.

    python -m benchmarks.publish raw|dramatiq|celery|eventpipe N QUEUE
    python -m benchmarks.publish pipeline N SEED        (eventpipe env configured by the caller)
    python -m benchmarks.publish eventpipe-batch N      (items to the batch no-op task)
    python -m benchmarks.publish celery-pipeline N SEED (BENCH_CP_* env: see benchmarks.celery_pipeline)
    python -m benchmarks.publish limit N QUEUE          (small reference messages, raw pika)
    python -m benchmarks.publish steady RATE SECONDS SEED TICK_MS
    python -m benchmarks.publish large-file N PATH EMBEDDED(0|1) CHUNK  (a JSON-lines file of events)
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import psutil

from benchmarks.common import AMQP_URL, windowed_publish


def _cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def body_like_dramatiq(queue: str, i: int) -> bytes:
    return json.dumps(
        {"queue_name": queue, "actor_name": "bench.noop", "args": [], "kwargs": {}, "options": {},
         "message_id": f"{i:08d}-0000-4000-8000-000000000000", "message_timestamp": int(time.time() * 1000)}
    ).encode()


def main() -> None:
    kind = sys.argv[1]
    n = int(float(sys.argv[2]))
    out: dict[str, Any] = {"kind": kind, "n": n}
    if kind == "raw":
        queue = sys.argv[3]
        bodies = [body_like_dramatiq(queue, i) for i in range(n)]
        c0, t0 = _cpu(), time.time()
        out["confirmed"] = windowed_publish(AMQP_URL, queue, bodies, window=1000)
    elif kind == "dramatiq":
        os.environ["BENCH_QUEUE"] = sys.argv[3]
        from benchmarks.dramatiq_app import broker, noop

        broker.declare_queue(sys.argv[3])
        noop.send()  # connect and declare outside the timed part
        n -= 1
        c0, t0 = _cpu(), time.time()
        for _ in range(n):
            noop.send()
        broker.close()
    elif kind == "celery":
        os.environ["BENCH_QUEUE"] = sys.argv[3]
        from benchmarks.celery_app import app, noop

        with app.connection_for_write() as conn:
            app.amqp.queues[sys.argv[3]](conn.default_channel).declare()
        noop.delay()
        n -= 1
        c0, t0 = _cpu(), time.time()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)
    elif kind == "eventpipe":
        from eventpipe.runtime import open_runtime

        rt = open_runtime()
        if os.environ.get("BENCH_PIN_NODE"):
            rt.pin_node(os.environ["BENCH_PIN_NODE"])
        from benchmarks.bench_tasks import noop

        enqueue_many_compat(rt, noop, "bench.noop", [{}])  # connect and declare outside the timed part
        n -= 1
        c0, t0 = _cpu(), time.time()
        # chunks of 10,000: one enqueue_many call must be confirmed within the publisher's 30 s
        # deadline (eventpipe.queues.publisher.Publisher.deadline_s), which 100,000 at once misses
        for start in range(0, n, 10_000):
            enqueue_many_compat(rt, noop, "bench.noop", [{}] * min(10_000, n - start))
        out["cpu_s"] = _cpu() - c0
        out["t0"], out["t1"] = t0, time.time()
        out["timed"] = n
        print(json.dumps(out), flush=True)
        rt.close()
        return
    elif kind == "pipeline":
        out.update(submit_pipeline(n, int(sys.argv[3])))
        print(json.dumps(out), flush=True)
        return
    elif kind == "eventpipe-batch":
        out.update(publish_batch_items(n))
        print(json.dumps(out), flush=True)
        return
    elif kind in ("celery-pipeline", "limit", "steady", "large-file"):
        from benchmarks import publish_pipelines

        fn = {"celery-pipeline": publish_pipelines.celery_pipeline, "limit": publish_pipelines.limit,
              "steady": publish_pipelines.steady, "large-file": publish_pipelines.large_file}[kind]
        out.update(fn(sys.argv[2:]))
        print(json.dumps(out), flush=True)
        return
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["cpu_s"] = _cpu() - c0
    out["t0"], out["t1"] = t0, time.time()
    out["timed"] = n
    print(json.dumps(out), flush=True)


def enqueue_many_compat(rt: Any, handle: Any, name: str, items: list[dict[str, Any]]) -> int:
    """``ctx.enqueue_many(task_handle, items)`` (the task-handle API); on a core that still takes
    task names, the name."""
    try:
        return int(rt.enqueue_many(handle, items) or len(items))
    except (KeyError, TypeError, AttributeError, LookupError):
        return int(rt.enqueue_many(name, items) or len(items))


def publish_batch_items(n: int) -> dict[str, Any]:
    """N items to the batch no-op task with ``enqueue_many`` (which packs them into messages)."""
    from benchmarks.bench_batch_tasks import noop_batch
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    enqueue_many_compat(rt, noop_batch, "bench.noop_batch", [{"i": -1}])  # connect + declare, untimed
    c0, t0 = _cpu(), time.time()
    for start in range(0, n, 10_000):
        enqueue_many_compat(rt, noop_batch, "bench.noop_batch", [{"i": i} for i in range(start, min(n, start + 10_000))])
    out = {"cpu_s": _cpu() - c0, "t0": t0, "t1": time.time(), "timed": n, "n": n + 1}
    rt.close()
    return out


def submit_many_compat() -> Any:
    """``eventpipe.submit_many(project_id, events)`` where the package has it, else the
    runtime-taking function of ``eventpipe.ingest.submit`` (before the rewrite)."""
    import eventpipe

    top = getattr(eventpipe, "submit_many", None)
    if top is not None:
        return top
    from eventpipe.ingest.submit import submit_many
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    return lambda project_id, events: submit_many(rt, project_id, events)


def accepted_ids(project_id: int, result: Any) -> set[tuple[int, str]]:
    """The (project, event id) pairs a submit call accepted. A repeated event may be accepted
    twice (the unique event row at save is the dedupe), so callers count the distinct pairs:
    that many rows must appear in ``events``."""
    return {(project_id, str(eid)) for eid in getattr(result, "accepted", [])}


def submit_pipeline(n: int, seed: int) -> dict[str, Any]:
    """What `eventpipe demo --submit-only` does: demo events, submit_many per project in chunks of 1000."""
    from collections import defaultdict

    from eventpipe.metadata.queries import ensure_project
    from eventpipe.pipeline.demo import DEMO_PROJECTS, generate
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    for pid, (name, _platform) in DEMO_PROJECTS.items():
        ensure_project(rt.db, pid, name)
    submit = submit_many_compat()
    events = generate(n, seed, now=time.time())
    accepted: set[tuple[int, str]] = set()
    calls = 0
    c0, t0 = _cpu(), time.time()
    for start in range(0, len(events), 1000):
        by_project: dict[int, list[Any]] = defaultdict(list)
        for ev in events[start : start + 1000]:
            by_project[ev.project_id].append(ev.payload)
        for pid, items in by_project.items():
            accepted |= accepted_ids(pid, submit(pid, items))
            calls += 1
    t1 = time.time()
    cpu = _cpu() - c0
    rt.close()
    return {"accepted": len(accepted), "calls": calls, "t0": t0, "t1": t1, "cpu_s": cpu}


if __name__ == "__main__":
    main()
