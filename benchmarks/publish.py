"""Publisher side of the task benchmarks, run as its own process so each framework's client state
and CPU are isolated. Prints one JSON line: wall-clock start/end of the publish and its CPU.

    python -m benchmarks.publish raw|dramatiq|celery|eventpipe N QUEUE
    python -m benchmarks.publish pipeline N SEED        (eventpipe env configured by the caller)
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
    kind, n = sys.argv[1], int(sys.argv[2])
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
        rt.enqueue("bench.noop")  # connect and declare outside the timed part
        n -= 1
        c0, t0 = _cpu(), time.time()
        # chunks of 10,000: one enqueue_many call must be confirmed within the publisher's 30 s
        # deadline (eventpipe.queues.publisher.Publisher.deadline_s), which 100,000 at once misses
        for start in range(0, n, 10_000):
            rt.enqueue_many("bench.noop", [{}] * min(10_000, n - start))
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
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["cpu_s"] = _cpu() - c0
    out["t0"], out["t1"] = t0, time.time()
    out["timed"] = n
    print(json.dumps(out), flush=True)


def submit_pipeline(n: int, seed: int) -> dict[str, Any]:
    """What `eventpipe demo --submit-only` does: demo events, submit_many per project in chunks of 1000."""
    from collections import defaultdict

    from eventpipe.ingest.submit import SubmitResult, submit_many
    from eventpipe.metadata.queries import ensure_project
    from eventpipe.pipeline.demo import DEMO_PROJECTS, generate
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    for pid, (name, _platform) in DEMO_PROJECTS.items():
        ensure_project(rt.db, pid, name)
    events = generate(n, seed, now=time.time())
    result = SubmitResult()
    c0, t0 = _cpu(), time.time()
    for start in range(0, len(events), 1000):
        by_project: dict[int, list[Any]] = defaultdict(list)
        for ev in events[start : start + 1000]:
            by_project[ev.project_id].append(ev.payload)
        for pid, items in by_project.items():
            result.merge(submit_many(rt, pid, items))
    t1 = time.time()
    cpu = _cpu() - c0
    rt.close()
    return {"accepted": len(result.accepted), "duplicates": len(result.duplicates), "rejected": len(result.rejected), "t0": t0, "t1": t1, "cpu_s": cpu}


if __name__ == "__main__":
    main()
