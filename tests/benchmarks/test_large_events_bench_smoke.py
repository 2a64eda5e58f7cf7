"""Proves the large-event and codec benchmarks run (as documented in docs/); asserts no timing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout


def test_large_events_benchmark_runs() -> None:
    out = _run("benchmarks.large_events", "--n", "10", "--repeat", "1", "--before", "HEAD")
    for stage in ("| normalize |", "| trim |", "| scrub |", "| scrub as of HEAD |", "| codec encode (put) |"):
        assert stage in out, out


def test_codec_benchmark_runs() -> None:
    out = _run("benchmarks.codec", "--n", "10", "--repeat", "1")
    assert "**eventpipe codec as shipped**" in out and "| 512 |" in out, out
