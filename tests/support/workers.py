"""Running `eventpipe worker` subprocesses in tests, and waiting for conditions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
