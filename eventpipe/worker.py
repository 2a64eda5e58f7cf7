"""Worker pools: a supervisor process and its children, each a dramatiq Worker with threads.

Lifecycle, which operators rely on:
- SIGTERM (or a first SIGINT): children stop taking messages, finish the tasks in flight within
  the grace period, ack them and exit 0; the supervisor exits 0 when they have.
- a second SIGINT: stop at once; unacked messages are redelivered by RabbitMQ.
- a child that has run N tasks or grown past M MB of RSS exits with RECYCLE and is replaced;
  a child that dies (even kill -9) is replaced too, with backoff.
- every child upserts a heartbeat row every few seconds, and follows queue pauses.
- a child whose supervisor dies (even kill -9) stops as on SIGTERM within a second or two:
  Linux delivers SIGTERM on the parent's death (``PR_SET_PDEATHSIG``), and a watch thread that
  sees the parent pid change does the same elsewhere. Without it, orphans would keep consuming
  beside the pool a restarted supervisor starts, and never recycle.

This is the top-level supervisor, as dramatiq's own ``worker`` module: it ties the broker
(``eventpipe.queues``), the runtime and the ops tables together, so it sits above them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fnmatch
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("eventpipe.worker")

RECYCLE = 3
HEARTBEAT_S = 5.0
CONTROL_S = 1.0
PARENT_WATCH_S = 0.5
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class PoolConfig:
    name: str = ""
    queues: list[str] = field(default_factory=list)  # logical names or glob patterns; empty = all
    processes: int = 1
    threads: int = 8
    prefetch: int = 0  # 0: adaptive, from 2 x threads up with the ack rate
    recycle_tasks: int = 0
    recycle_rss_mb: int = 0
    grace_s: float = 30.0
    nodes: list[str] = field(default_factory=list)  # HOST:PORT to consume from; empty = all


def select_queues(patterns: list[str], available: list[str]) -> list[str]:
    """Logical queue names matching the patterns (exact names or globs like ``events.*``)."""
    if not patterns:
        return list(available)
    chosen = [q for q in available if any(fnmatch.fnmatchcase(q, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(q, p) for q in available)]
    if unknown:
        raise ValueError(f"no queue matches {', '.join(unknown)}; declared queues: {', '.join(available)}")
    return chosen


# Child ---------------------------------------------------------------------------------------
class _Counter:
    """Counts finished tasks (for recycling and heartbeats) as a dramatiq middleware."""

    def __init__(self) -> None:
        import dramatiq.middleware

        outer = self
        self.done = 0

        class Count(dramatiq.middleware.Middleware):
            def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
                outer.done += 1

            def after_skip_message(self, broker: Any, message: Any) -> None:
                outer.done += 1

        self.middleware = Count()


def die_with_parent(parent_pid: int, on_parent_death: Callable[[], None]) -> None:
    """Call ``on_parent_death`` (once) when the process ``parent_pid`` is gone.

    On Linux the kernel sends SIGTERM when the parent dies (prctl ``PR_SET_PDEATHSIG``), which the
    worker's SIGTERM handler turns into a graceful stop; a daemon thread polling the parent pid
    covers other systems and the window before the prctl call took effect."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d); relying on the parent watch", ctypes.get_errno())
        except OSError:
            log.warning("no libc prctl; relying on the parent watch")
    fired = threading.Event()

    def watch() -> None:
        while not fired.is_set():
            if os.getppid() != parent_pid:
                fired.set()
                log.warning("supervisor %d is gone: stopping (in-flight tasks finish, the rest is requeued)", parent_pid)
                on_parent_death()
                return
            time.sleep(PARENT_WATCH_S)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def child_main(pool: PoolConfig, worker_id: str, parent_pid: int | None = None) -> None:
    """Entry point of one worker process."""
    import dramatiq
    import psutil

    stop = threading.Event()
    if parent_pid is not None:
        die_with_parent(parent_pid, stop.set)
    from eventpipe.config import load_settings
    from eventpipe.runtime import open_runtime

    # this process's settings: the environment's, with the pool's --node choice on top
    settings = load_settings(**({"consume_nodes": pool.nodes} if pool.nodes else {}))
    logging.basicConfig(level=settings.log_level, format=f"%(asctime)s {worker_id} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))  # pika's INFO is per-socket noise
    rt = open_runtime(settings)
    queues = select_queues(pool.queues, rt.registry.queues())
    physical = {rt.topology.queue(q) for q in queues}
    counter = _Counter()
    rt.broker.add_middleware(counter.middleware)
    worker = dramatiq.Worker(rt.broker, queues=physical, worker_threads=pool.threads, worker_timeout=500)
    worker.queue_prefetch = pool.prefetch or pool.threads * 2
    rt.broker.adaptive_prefetch = not pool.prefetch  # not set by hand: grows with the ack rate (queues/consumer.py)
    interrupts = [0]

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT:
            interrupts[0] += 1
            if interrupts[0] >= 2:
                os._exit(1)  # second Ctrl-C: now; RabbitMQ redelivers what was unacked
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()
    proc = psutil.Process()
    started = _utcnow()
    reason = "stop"
    paused: set[str] = set()
    # seen by `ops workers` and the console as soon as it consumes, not a control tick later
    _heartbeat(rt, worker_id, pool, queues, started, counter.done, "running")
    next_beat = time.monotonic() + HEARTBEAT_S
    try:
        while not stop.wait(CONTROL_S):
            paused = _apply_pauses(rt, worker, queues, paused)
            if time.monotonic() >= next_beat:
                _heartbeat(rt, worker_id, pool, queues, started, counter.done, "running")
                next_beat = time.monotonic() + HEARTBEAT_S
            if pool.recycle_tasks and counter.done >= pool.recycle_tasks:
                reason = "recycle"
                break
            if pool.recycle_rss_mb and proc.memory_info().rss > pool.recycle_rss_mb * 1024 * 1024:
                reason = "recycle"
                break
    finally:
        _heartbeat(rt, worker_id, pool, queues, started, counter.done, "stopping")
        # Take no new work; dramatiq stops worker threads first (in-flight tasks finish and are
        # acked over the still-open consumer connections), then closes consumers, which returns
        # prefetched messages to their queues.
        rt.broker.paused_queues.update(rt.topology.queue(q) for q in queues)
        worker.stop(timeout=int(pool.grace_s * 1000))
        _heartbeat(rt, worker_id, pool, queues, started, counter.done, "stopped")
        rt.close()
    os._exit(RECYCLE if reason == "recycle" else 0)


def _utcnow() -> Any:
    from eventpipe.metadata.db import utcnow

    return utcnow()


def _heartbeat(rt: Any, worker_id: str, pool: PoolConfig, queues: list[str], started: Any, done: int, state: str) -> None:
    from eventpipe.metadata.models import WorkerHeartbeat

    try:
        with rt.db.session() as s:
            s.merge(
                WorkerHeartbeat(
                    worker_id=worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    pool=pool.name,
                    queues=queues,
                    nodes=pool.nodes or [],
                    started_at=started,
                    last_seen=_utcnow(),
                    tasks_done=done,
                    state=state,
                )
            )
    except Exception:  # noqa: BLE001 - a database hiccup must not stop the worker
        log.warning("heartbeat failed", exc_info=True)


def paused_queues(rt: Any) -> set[str]:
    from sqlalchemy import select

    from eventpipe.metadata.models import QueuePause

    with rt.db.session() as s:
        return set(s.scalars(select(QueuePause.queue)))


def _apply_pauses(rt: Any, worker: Any, queues: list[str], before: set[str]) -> set[str]:
    try:
        now = paused_queues(rt) & set(queues)
    except Exception:  # noqa: BLE001
        return before
    # The broker's consumers cancel their AMQP consumer for paused queues (prefetched messages go
    # back to the queue) and keep their connection, so tasks in flight still get acked.
    for q in now - before:
        rt.broker.paused_queues.add(rt.topology.queue(q))
        log.warning("queue %s paused", q)
    for q in before - now:
        rt.broker.paused_queues.discard(rt.topology.queue(q))
        log.warning("queue %s resumed", q)
    return now


# Supervisor ------------------------------------------------------------------------------------
def supervise(pool: PoolConfig) -> int:
    """Run ``pool.processes`` children until SIGTERM/SIGINT; replace children that exit."""
    ctx = multiprocessing.get_context("spawn")
    base = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    children: dict[int, Any] = {}
    stopping = threading.Event()
    interrupts = [0]
    restarts = [0.0] * pool.processes

    def spawn(slot: int) -> None:
        proc = ctx.Process(target=child_main, args=(pool, f"{base}-{slot}", os.getpid()), name=f"eventpipe-worker-{slot}")
        proc.start()
        children[slot] = proc

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT:
            interrupts[0] += 1
        if interrupts[0] >= 2:
            for proc in children.values():
                if proc.is_alive():
                    os.kill(proc.pid, signal.SIGKILL)
            os._exit(1)
        stopping.set()
        for proc in children.values():
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for slot in range(pool.processes):
        spawn(slot)
    while not stopping.is_set():
        for slot, proc in list(children.items()):
            if not proc.is_alive() and not stopping.is_set():
                code = proc.exitcode
                if code != RECYCLE:
                    log.warning("worker %d exited with %s; restarting", slot, code)
                    time.sleep(min(5.0, 0.5 + restarts[slot]))
                    restarts[slot] = min(5.0, restarts[slot] * 2 + 0.5)
                spawn(slot)
        stopping.wait(0.5)
    deadline = time.monotonic() + pool.grace_s + 10
    for proc in children.values():
        proc.join(timeout=max(0.1, deadline - time.monotonic()))
    worst = 0
    for proc in children.values():
        if proc.is_alive():
            proc.kill()
            worst = 1
        elif proc.exitcode not in (0, RECYCLE):
            worst = 1
    return worst
