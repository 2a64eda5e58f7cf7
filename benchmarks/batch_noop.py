"""The batch no-op row: N items sent with ``enqueue_many`` to a ``@task(..., batch=True)`` no-op,
drained by `eventpipe worker --processes 2 --threads 8`; items per second.

Queue depth counts messages, and a message carries many items, so the depth-based timing of the
other no-op rows would be coarse here: the task itself logs how many items each call got (see
``benchmarks.bench_batch_tasks``). The rate runs from the moment 10 % of the items were done to
the wall time of the last call, like the other rows (start-up not counted).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import (
    AMQP_URL,
    VENV_BIN,
    CpuMeter,
    DepthProbe,
    bench_env,
    loadavg,
    log,
    machine_broker_pid,
    spawn,
    tree_rss_mb,
    unique,
)
from benchmarks.stack import delete_prefixed
from benchmarks.tasks import Ctx, TaskResult, _publish, _stop_workers


def _progress(folder: Path) -> tuple[int, float]:
    """Items done so far and the wall time of the latest call."""
    done, last = 0, 0.0
    for f in folder.glob("*.log"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                done += int(parts[1])
                last = max(last, float(parts[0]))
    return done, last


def run_batch_noop(n: int, ctx: Ctx) -> TaskResult:
    from benchmarks.bench_batch_tasks import BATCH_API

    system = "eventpipe-batch"
    prefix = unique("bench-epb-") + "."
    home = ctx.workdir / f"home-{prefix.strip('.')}"
    counts = ctx.workdir / f"counts-{prefix.strip('.')}"
    home.mkdir()
    counts.mkdir()
    queue = prefix + "benchbatch"
    env = bench_env(
        EVENTPIPE_BROKER_URL=AMQP_URL, EVENTPIPE_QUEUE_PREFIX=prefix, EVENTPIPE_HOME=str(home),
        EVENTPIPE_TASK_MODULES="benchmarks.bench_batch_tasks", BENCH_COUNT_DIR=str(counts),
    )
    from eventpipe.metadata.db import Database

    db = Database(f"sqlite:///{home / 'metadata.sqlite3'}")
    db.upgrade()
    db.dispose()
    probe = DepthProbe()
    broker_pid = machine_broker_pid()
    proc = None
    try:
        res = _publish(["eventpipe-batch", str(n)], env, timeout=max(600, n / 50))
        messages = probe.depth(queue)
        items = res["n"]  # including the untimed first one
        if messages < 1:
            raise RuntimeError(f"{system}: no messages in {queue} after publishing {items} items")
        per_message = items / messages
        load = loadavg()
        t_spawn = time.time()
        proc = spawn([str(VENV_BIN / "eventpipe"), "worker", "--queues", "benchbatch", "--processes", "2", "--threads", "8"],
                     env, ctx.workdir / f"{system}.log")
        deadline = time.monotonic() + max(600, n / 20)
        while (done_at := _progress(counts)[0]) < 0.1 * items:
            if proc.poll() is not None:
                raise RuntimeError(f"{system} workers exited with {proc.returncode}; see {ctx.workdir / (system + '.log')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{system}: workers did not start")
            time.sleep(0.01)
        t_from = time.time()
        workers = CpuMeter(lambda: [proc.pid] if proc else []).start()
        broker = CpuMeter(lambda: [broker_pid] if broker_pid else []).start()
        while (progress := _progress(counts))[0] < items:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{system}: {progress[0]} of {items} items done; see {ctx.workdir}")
            time.sleep(0.02)
        rss = tree_rss_mb([proc.pid])
        worker_cpu, broker_cpu = workers.stop(), broker.stop()
        timed = items - done_at
        note = "" if BATCH_API else "no batch API: one item per message"
        if timed < 0.5 * items:  # a few big messages: most items came in the first delivery
            timed, t_from = items, t_spawn
            note = "; ".join(filter(None, [note, "too few messages to time past start-up: timed from worker start"]))
        rate = timed / max(progress[1] - t_from, 1e-6)
        api = "batch=True" if BATCH_API else "NO batch API on this commit: one item per message"
        r = TaskResult(
            system=system,
            setup=f"`@task(batch=True)` no-op, `enqueue_many` of {n:,} items -> {messages:,} messages ({per_message:,.1f} items each); "
                  f"`eventpipe worker --processes 2 --threads 8`; {api}",
            n=timed, publish_rate=res["timed"] / (res["t1"] - res["t0"]), e2e_rate=rate,
            publisher_cpu_s=res["cpu_s"], worker_cpu_s=worker_cpu, broker_cpu_s=broker_cpu, load=load,
            note=note, worker_rss_mb=rss, items_per_message=per_message,
        )
        log(f"{system}: {rate:,.0f} items/s ({per_message:,.1f} items/message), worker CPU {worker_cpu:.1f}s (load {load})")
        return r
    finally:
        if proc is not None:
            _stop_workers(proc, ctx)
        probe.close()
        delete_prefixed(prefix, [queue, queue + ".dlq"])

