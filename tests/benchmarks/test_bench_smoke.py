"""Proves the benchmark commands run end to end with tiny counts; asserts no timing at all."""

from __future__ import annotations

import json
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
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "| system |" in r.stdout, r.stdout
    for system in ("raw", "dramatiq", "celery", "eventpipe"):
        assert f"| {system} |" in r.stdout
    assert "| postgres |" in r.stdout and "| sqlite |" in r.stdout


@pytest.mark.slow
@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.timeout(1600)  # the run's own limit is 1,500 s; on a loaded 2-core machine it takes over 10 min
def test_pipeline_benchmark_quick_runs_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "pipeline", "--quick", "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-6000:]
    assert "Summary: eventpipe beside its baselines" in r.stdout, r.stdout
    data = json.loads(out.read_text())
    assert data["failed"] == []
    assert [t["system"] for t in data["tasks"]] == ["raw", "dramatiq", "celery", "eventpipe", "eventpipe-batch"]
    assert [p["db"] for p in data["pipeline"]] == ["pipeline-eventpipe", "pipeline-celery", "pipeline-limit"]
    for row in data["tasks"] + data["pipeline"]:
        assert row["worker_rss_mb"] > 0, row
    for p in data["pipeline"]:
        assert p["accepted"] > 0 and p["note"] == "", p  # every accepted event was seen saved
    assert data["ingest"]["ok"] == data["ingest"]["sent"] > 0, data["ingest"]
    assert data["ingest"]["server_rss_mb"] > 0
    assert data["steady"]["saved"] == data["steady"]["accepted"] > 0, data["steady"]
    figures = {s["figure"] for s in data["summary"]}
    assert {"no-op tasks consumed/s", "batch no-op items/s", "pipeline saved events/s", "HTTP ingest accepted/s"} <= figures
    baselines = {s["baseline"] for s in data["summary"] if s["figure"] == "pipeline saved events/s"}
    assert {"pipeline-celery", "pipeline-limit"} <= baselines
    assert [lg["row"] for lg in data["large"]] == ["large-embedded", "large-rabbitmq"]
    for lg in data["large"]:
        assert lg["saved"] == lg["accepted"] == lg["events"] > 0 and lg["note"] == "", lg  # every large event saved once
        assert lg["mean_event_kb"] > 40 and lg["mb_per_s"] > 0 and lg["worker_rss_mb"] > 0, lg
    large_targets = [s for s in data["summary"] if s["figure"].startswith("large (~50 KB) saved events/s")]
    assert len(large_targets) == 2 and all(s["target"] == 300.0 and s["met"] in (True, False) for s in large_targets)
    assert "| large-embedded |" in r.stdout and "| large-rabbitmq |" in r.stdout


def test_pipeline_benchmark_rejects_unknown_rows() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "pipeline", "--only", "eventpipe,nonsense"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2
    assert "unknown rows: nonsense" in r.stderr


def test_new_rows_counts_rows_that_commit_below_the_highest_id_once() -> None:
    """Rows committing out of id order are each new once; gaps that never fill expire."""
    from benchmarks.sqlwatch import NewRows

    seen = NewRows(ttl=15.0)
    assert [r[0] for r in seen.fresh([(5, "e"), (1, "a"), (3, "c")], 0.0)] == [1, 3, 5]
    assert sorted(seen.gaps) == [2, 4]
    assert [r[0] for r in seen.fresh([(2, "b"), (6, "f")], 1.0)] == [2, 6]
    assert sorted(seen.gaps) == [4]
    assert [r[0] for r in seen.fresh([(4, "d"), (3, "c")], 2.0)] == [4]  # 3 again: not new
    assert seen.gaps == {}
    assert [r[0] for r in seen.fresh([(8, "h")], 3.0)] == [8]
    assert sorted(seen.gaps) == [7]
    assert seen.fresh([], 30.0) == [] and seen.gaps == {}  # 7 was rolled back: forgotten after ttl
    assert seen.fresh([(7, "g")], 31.0) == []  # ... and not counted if it shows up that late
