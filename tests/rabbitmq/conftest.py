"""RabbitMQ test helpers: a unique queue prefix per test, worker subprocesses, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest

MACHINE_AMQP = os.environ.get("EVENTPIPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
REPO = Path(__file__).resolve().parents[2]


def delete_queues(url: str, prefix: str, logical: list[str]) -> None:
    from eventpipe.queues.topology import DELAY_BUCKETS_MS, Topology

    topo = Topology(prefix)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in logical:
            for name in [topo.queue(q), topo.dead_letter(q)] + [topo.delay(q, b) for b in DELAY_BUCKETS_MS]:
                ch = conn.channel()
                try:
                    ch.queue_delete(name)
                except pika.exceptions.ChannelClosedByBroker:
                    pass
                finally:
                    if ch.is_open:
                        ch.close()
    finally:
        conn.close()


@pytest.fixture
def rabbit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a runtime and its worker subprocesses on the machine's RabbitMQ."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        "EVENTPIPE_BROKER_URL": MACHINE_AMQP,
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_TASK_MODULES": "tests.support.tasks",
        "EVENTPIPE_MIN_BACKOFF_MS": "500",
        "EVENTPIPE_MAX_BACKOFF_MS": "2000",
        "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "20",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(REPO))
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    yield env
    from eventpipe.runtime import reset_runtime

    reset_runtime()
    delete_queues(MACHINE_AMQP, prefix, ["events", "events.save", "events.post", "events.store", "buffers", "rollups", "testing"])


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `eventpipe worker`; its output goes to a file (``proc.log_path``), never to an
        unread pipe, which would block the worker once it fills."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "EVENTPIPE_LOG_LEVEL": "INFO", **(extra_env or {})}
        log_path = tmp_path / f"worker-{len(procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "eventpipe.cli", "worker", *args],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log_path  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_tail(proc: subprocess.Popen, chars: int = 3000) -> str:
    return proc.log_path.read_text(errors="replace")[-chars:]  # type: ignore[attr-defined]


def children_of(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]
