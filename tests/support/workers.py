"""Waiting for conditions and reading worker subprocesses (the ``start_worker`` fixture is in
tests/conftest.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

#: The repository root: worker subprocesses get it on PYTHONPATH to import ``tests.support``.
REPO = Path(__file__).resolve().parents[2]


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
