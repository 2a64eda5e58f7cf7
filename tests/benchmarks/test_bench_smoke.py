"""Proves `python -m benchmarks tasks --quick` runs end to end; asserts no timing at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_tasks_benchmark_quick_runs() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "tasks", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "| system |" in r.stdout, r.stdout
    for system in ("raw", "dramatiq", "celery", "eventpipe"):
        assert f"| {system} |" in r.stdout
    assert "| postgres |" in r.stdout and "| sqlite |" in r.stdout
