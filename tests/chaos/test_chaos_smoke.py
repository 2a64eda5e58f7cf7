"""Smoke of `make chaos`: the shortest scenario (R2, worker processes killed with -9) on one
RabbitMQ node, run as users run it (`python -m chaos` as a subprocess): the table is printed,
the report written, and no accepted event is lost or stored twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_chaos_r2_smoke(tmp_path: Path) -> None:
    """Fails (does not skip) without the RabbitMQ package: the run says what is missing."""
    out = tmp_path / "reliability.md"
    res = subprocess.run(
        [sys.executable, "-m", "chaos", "--scenarios", "R2", "--nodes", "1", "--duration", "12", "--rate", "30",
         "--clients", "6", "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=580,
    )
    assert "eventpipe chaos run" in res.stdout, res.stdout + res.stderr
    report = out.read_text()
    row = next(line for line in report.splitlines() if line.startswith("| R2 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    accepted, stored, lost, dup_rows = (int(c) for c in cells[3:7])
    assert accepted > 0 and stored == accepted and lost == 0 and dup_rows == 0, report
    assert re.search(r"commit `[0-9a-f]+", report)
    assert res.returncode == 0, res.stdout + res.stderr
