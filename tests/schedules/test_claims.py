"""N schedulers at once, racing on every slot: each slot is enqueued exactly once.

Each scheduler has its own runtime (own engine, own in-process broker) and its own controllable
clock, and runs through the same simulated timeline in its own thread as fast as it can — no
lock-step, so they genuinely race on the claims. What was enqueued is read back from every
scheduler's broker and compared with the slots the job specs define.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventpipe.runtime import Runtime
from eventpipe.schedules import store
from eventpipe.schedules.claims import RedisClaims, SqlClaims
from eventpipe.schedules.scheduler import Scheduler

from tests.support.schedules import (
    FakeClock,
    concurrency_jobs,
    drive,
    expected_slots,
    message_slots,
    slot_counts,
    timeline,
)

STEPS = 250  # 2,500 simulated seconds: about 1,700 slots over eight jobs


def _claims(kind: str, redis_prefix: Any) -> Callable[[], Any]:
    if kind == "redis":
        client, prefix = redis_prefix
        return lambda: RedisClaims(client, prefix=prefix)
    return SqlClaims


def _assert_exactly_once(rts: list[Runtime], times: list, jobs: Any) -> None:
    counts = slot_counts(message_slots(rts))
    expected = expected_slots(jobs, times[0], times[-1])
    assert len(expected) > 1500
    duplicates = {k: v for k, v in counts.items() if v > 1}
    missing = expected - set(counts)
    extra = set(counts) - expected
    assert not duplicates, f"{len(duplicates)} slots enqueued more than once, e.g. {list(duplicates.items())[:3]}"
    assert not missing, f"{len(missing)} slots never enqueued, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} unexpected slots, e.g. {sorted(extra)[:3]}"
    with rts[0].db.session() as s:
        fired = store.history(s, limit=100_000)
    assert {(r["job"], r["slot"].isoformat() + "+00:00") for r in fired} == expected
    assert len({r["scheduler"] for r in fired}) > 1  # the work really was shared


@pytest.mark.parametrize(
    "db, claims",
    [
        ("sqlite", "sql"),
        pytest.param("postgres", "sql", marks=pytest.mark.postgres),
        pytest.param("sqlite", "redis", marks=pytest.mark.redis),
    ],
)
def test_three_threaded_schedulers_fire_each_slot_once(
    db: str, claims: str, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    redis_prefix = request.getfixturevalue("redis_prefix") if claims == "redis" else None
    new_claims = _claims(claims, redis_prefix)
    jobs = concurrency_jobs()
    rts = [make_runtime(database_url=url) for _ in range(3)]
    clocks = [FakeClock() for _ in rts]
    scheds = [Scheduler(rt, clock=c, jobs=jobs, claims=new_claims(), scheduler_id=f"s{i}") for i, (rt, c) in enumerate(zip(rts, clocks))]
    times = timeline(STEPS)
    drive(list(zip(scheds, clocks)), times)
    _assert_exactly_once(rts, times, jobs)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


PROC_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "proc_scheduler.py"


def _spawn(args: dict[str, Any], tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    cfg = tmp_path / f"{name}.json"
    cfg.write_text(json.dumps(args))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, str(PROC_SCRIPT), str(cfg)], env=env, stderr=subprocess.PIPE)


def _wait_ready(tmp_path: Path, names: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    """Start barrier (not a timing assertion): wait until every process has built its runtime."""
    while not all((tmp_path / f"{n}.ready").exists() for n in names):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"scheduler process exited early: {p.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        time.sleep(0.02)
    (tmp_path / "go").touch()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_three_scheduler_processes_fire_each_slot_once(
    db: str, tmp_path: Path, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest
) -> None:
    """Processes racing on every slot (clock skew bounded to three steps; the lease is longer
    than the run, takeover is exercised by the crash tests). The schema is migrated once before they start, as
    a deployment does (concurrent first-time migrations race on Postgres: see the report)."""
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    make_runtime(database_url=url)
    names = [f"p{i}" for i in range(3)]
    procs = [
        _spawn({"home": str(tmp_path / ".eventpipe"), "database_url": url, "id": n, "steps": STEPS, "out": str(tmp_path / f"{n}.out"),
                "barrier": str(tmp_path), "lease_s": 100_000, "peers": names, "max_ahead": 3}, tmp_path, n)
        for n in names
    ]
    try:
        _wait_ready(tmp_path, names, procs)
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    pairs = [tuple(x) for n in names for x in json.loads((tmp_path / f"{n}.out").read_text())["enqueued"]]
    counts = slot_counts(pairs)  # type: ignore[arg-type]
    jobs = concurrency_jobs()
    times = timeline(STEPS)
    expected = expected_slots(jobs, times[0], times[-1])
    assert len(expected) > 1500
    assert {k for k, v in counts.items() if v > 1} == set(), "duplicates"
    assert set(counts) == expected, f"missing {sorted(expected - set(counts))[:3]}, extra {sorted(set(counts) - expected)[:3]}"
    shares = {n: len(json.loads((tmp_path / f"{n}.out").read_text())["enqueued"]) for n in names}
    assert sum(1 for v in shares.values() if v) >= 2, shares  # the work really was shared
