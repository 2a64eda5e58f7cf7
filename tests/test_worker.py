"""Worker pools: config-file pools, recycling children, and the immediate second SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.rabbit import MACHINE_AMQP
from tests.support.workers import REPO, children_of, log_tail, wait_for

pytestmark = pytest.mark.rabbitmq


def runtime():
    from eventpipe.runtime import open_runtime

    return open_runtime()


def test_children_are_recycled_after_n_tasks_and_no_task_is_lost(rabbit_env, start_worker):
    rt = runtime()
    rt.enqueue_many("testing.slow", [{"key": f"r{i}", "seconds": 0.25} for i in range(24)])
    worker = start_worker("--queues", "testing", "--threads", "1", "--prefetch", "1",
                          extra_env={"EVENTPIPE_WORKER_RECYCLE_TASKS": "4"})
    pids: set[int] = set()

    def all_done() -> bool:
        pids.update(children_of(worker.pid))
        return all(rt.store.get(f"done/r{i}") is not None for i in range(24))

    wait_for(all_done, 120, "all 24 tasks")
    assert len(pids) >= 2, f"the child was replaced after 4 tasks: pids {pids}\n{log_tail(worker)}"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_pool_from_the_config_file_and_unknown_pool(rabbit_env, start_worker, tmp_path):
    (tmp_path / "eventpipe.toml").write_text('[pools.tests]\nqueues = ["test*"]\nprocesses = 1\nthreads = 2\n')
    rt = runtime()
    rt.enqueue("testing.slow", key="p1", seconds=0)
    worker = start_worker("--pool", "tests")
    wait_for(lambda: rt.store.get("done/p1") is not None, 60, "the pool to run the task")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    assert "tests" in log_tail(worker, 10**6) and "2 threads" in log_tail(worker, 10**6)
    bad = subprocess.run(
        [sys.executable, "-m", "eventpipe.cli", "worker", "--pool", "nope"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "no pool 'nope'" in bad.stderr and "tests" in bad.stderr


def test_second_sigint_stops_at_once_and_the_message_is_redelivered(rabbit_env, start_worker):
    from eventpipe.queues.nodes import queue_depth

    rt = runtime()
    rt.enqueue("testing.slow", key="i1", seconds=30)
    worker = start_worker("--queues", "testing", "--threads", "1", "--prefetch", "1")
    wait_for(lambda: rt.store.get("started/i1") is not None, 60, "the long task to start")
    os.killpg(worker.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    time.sleep(0.5)
    os.killpg(worker.pid, signal.SIGINT)
    worker.wait(60)
    assert worker.returncode != 0
    assert rt.store.get("done/i1") is None, "it stopped without waiting for the 30 s task"
    wait_for(lambda: queue_depth(MACHINE_AMQP, rt.topology.queue("testing")) == 1, 30, "the unacked message back in its queue")
