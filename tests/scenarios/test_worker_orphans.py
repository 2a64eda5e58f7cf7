"""Regression: `kill -9` of an `eventpipe worker` supervisor left its worker processes running,
parented to init and still consuming; a supervisor restarted by systemd then ran twice the
consumers. Now children stop on their parent's death (PR_SET_PDEATHSIG + a parent watch),
finishing or requeueing what they hold, and nothing is lost."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from tests.support.workers import log_tail, wait_for

pytestmark = pytest.mark.rabbitmq


def worker_children(pid: int) -> list[psutil.Process]:
    """The pool's worker processes (not multiprocessing's resource tracker)."""
    out = []
    for child in psutil.Process(pid).children(recursive=False):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_of_the_supervisor_stops_its_workers_and_loses_nothing(rabbit_env, start_worker) -> None:  # noqa: ANN001
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    keys = [f"o{i}" for i in range(60)]
    rt.enqueue_many("testing.slow", [{"key": k, "seconds": 0.3} for k in keys])
    sup = start_worker("--queues", "testing", "--processes", "2", "--threads", "2", "--prefetch", "2")
    wait_for(lambda: len(worker_children(sup.pid)) == 2, 60, "two worker processes")
    children = worker_children(sup.pid)
    wait_for(lambda: sum(rt.store.get(f"started/{k}") is not None for k in keys) >= 4, 60, "tasks in flight")

    os.kill(sup.pid, signal.SIGKILL)  # the supervisor only: no signal reaches the children from us
    sup.wait(10)
    t0 = time.monotonic()
    wait_for(lambda: not any(alive(c) for c in children), 20,  # a liveness bound, not a timing claim
             f"workers {[c.pid for c in children]} to exit after their supervisor's death\n{log_tail(sup)}")
    print(f"\norphans gone {time.monotonic() - t0:.1f}s after kill -9 of the supervisor")
    done_before_restart = sum(rt.store.get(f"done/{k}") is not None for k in keys)

    # what systemd does next: start the pool again. Every task completes: none was lost.
    again = start_worker("--queues", "testing", "--processes", "1", "--threads", "4")
    wait_for(lambda: all(rt.store.get(f"done/{k}") is not None for k in keys), 120,
             f"every task done after the restart\n{log_tail(again)}")
    assert len(worker_children(again.pid)) == 1  # the restarted pool runs alone
    print(f"{done_before_restart} of {len(keys)} done before the restart, the rest after it")
    again.send_signal(signal.SIGTERM)
    assert again.wait(60) == 0
