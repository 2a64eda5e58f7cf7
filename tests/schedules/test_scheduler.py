"""Crashes, restarts, publish failures, pause/resume and expiry — all on controllable clocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from eventpipe.runtime import Runtime
from eventpipe.schedules import control, store
from eventpipe.schedules.claims import RedisClaims, SqlClaims
from eventpipe.middleware.expiry import SlotExpiry
from eventpipe.metadata.models import ScheduleSlot
from eventpipe.schedules.scheduler import Scheduler
from eventpipe.schedules.spec import JobRegistry, JobSpec

from tests.support import schedules as helpers
from tests.support.schedules import (
    T0,
    TEST_TASK,
    FakeClock,
    concurrency_jobs,
    drive,
    expected_slots,
    message_slots,
    slot_counts,
    timeline,
)


def _backend(db: str, claims: str, request: pytest.FixtureRequest) -> tuple[str | None, Callable[[], Any]]:
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    if claims == "redis":
        client, prefix = request.getfixturevalue("redis_prefix")
        return url, lambda: RedisClaims(client, prefix=prefix)
    return url, SqlClaims


BACKENDS = [
    ("sqlite", "sql"),
    pytest.param("postgres", "sql", marks=pytest.mark.postgres),
    pytest.param("sqlite", "redis", marks=pytest.mark.redis),
]


def _fired_rows(rt: Runtime) -> list[ScheduleSlot]:
    with rt.db.session() as s:
        return list(s.execute(select(ScheduleSlot)).scalars())


# A scheduler dies mid-run ------------------------------------------------------------------------
@pytest.mark.parametrize("db, claims", BACKENDS)
def test_scheduler_killed_mid_run_loses_no_slot(
    db: str, claims: str, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest
) -> None:
    """Scheduler 0 dies right after winning claims (before publishing them), at step 40. The
    others take its claims over once the lease (60 s) has passed: every slot still fires once."""
    url, new_claims = _backend(db, claims, request)
    jobs = concurrency_jobs()
    rts = [make_runtime(database_url=url) for _ in range(3)]
    clocks = [FakeClock() for _ in rts]
    scheds = [Scheduler(rt, clock=c, jobs=jobs, claims=new_claims(), scheduler_id=f"s{i}") for i, (rt, c) in enumerate(zip(rts, clocks))]
    dead = {"at": None}
    orphaned: list[tuple[str, datetime]] = []
    real_publish = scheds[0]._publish

    def dying_publish(spec: JobSpec, slot: datetime, result: Any) -> None:
        if clocks[0].now >= T0 + timedelta(seconds=400):
            dead["at"] = clocks[0].now
            orphaned.append((spec.name, slot))  # claimed, never published: the crash
            return
        real_publish(spec, slot, result)

    scheds[0]._publish = dying_publish  # type: ignore[method-assign]
    times = timeline(150)
    drive(list(zip(scheds, clocks)), times, stop_when={0: lambda step: dead["at"] is not None})
    assert orphaned, "scheduler 0 never won a claim after step 40; the test proved nothing"
    counts = slot_counts(message_slots(rts))
    expected = expected_slots(jobs, times[0], times[-1])
    assert {k for k, v in counts.items() if v > 1} == set()
    assert set(counts) == expected
    rows = {(r.job, r.slot): r for r in _fired_rows(rts[0])}
    for job, slot in orphaned:
        row = rows[(job, slot.replace(tzinfo=None))]
        assert row.fired_by in ("s1", "s2")  # taken over, not lost
        assert row.fired_at >= (slot + timedelta(seconds=60)).replace(tzinfo=None)  # ... after the lease
        if claims == "sql":
            assert row.attempts >= 2  # the claim row was taken over (compare-and-set), not re-inserted


PROC_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "proc_scheduler.py"


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_scheduler_process_sigkilled_mid_run_loses_no_slot(
    db: str, tmp_path: Path, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest
) -> None:
    """A real crash: one of three scheduler processes SIGKILLs itself right after winning claims.
    The survivors fire its slots after the lease; the history holds every slot."""
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    rt = make_runtime(database_url=url)  # migrate once, as a deployment does
    names = ["k0", "k1", "k2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = []
    for n in names:
        cfg = {"home": str(tmp_path / ".eventpipe"), "database_url": url, "id": n, "steps": 200, "out": str(tmp_path / f"{n}.out"),
               "barrier": str(tmp_path), "lease_s": 120, "kill_at_step": 30 if n == "k0" else None,
               "peers": names, "max_ahead": 3}
        (tmp_path / f"{n}.json").write_text(json.dumps(cfg))
        procs.append(subprocess.Popen([sys.executable, str(PROC_SCRIPT), str(tmp_path / f"{n}.json")], env=env, stderr=subprocess.PIPE))
    try:
        while not all((tmp_path / f"{n}.ready").exists() for n in names):
            assert all(p.poll() is None for p in procs), procs[0].stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            time.sleep(0.02)
        (tmp_path / "go").touch()
        codes = [procs[0].wait(timeout=300)]
        (tmp_path / "k0.progress").write_text(str(10**9))  # the dead do not hold the others back
        codes += [p.wait(timeout=300) for p in procs[1:]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes[0] == -9 and codes[1:] == [0, 0], [p.stderr.read().decode()[-2000:] for p in procs]  # type: ignore[union-attr]
    rows = _fired_rows(rt)
    fired = {(r.job, r.slot.isoformat() + "+00:00") for r in rows if r.fired_at is not None}
    times = timeline(200)
    expected = expected_slots(concurrency_jobs(), times[0], times[-1])
    assert fired == expected
    assert not [r for r in rows if r.fired_at is None]  # no claim left owed
    assert [r for r in rows if r.attempts > 1 and r.fired_by != "k0"]  # k0's claims were taken over
    survivors = [tuple(x) for n in names[1:] for x in json.loads((tmp_path / f"{n}.out").read_text())["enqueued"]]
    assert max(slot_counts(survivors).values()) == 1  # type: ignore[arg-type]


# Restart after a gap: each catch-up policy -------------------------------------------------------
@pytest.mark.parametrize(
    "policy, expected_in_gap",
    [
        ("skip", []),  # the newest missed slot is 3 min old: past the 60 s grace
        ("once", ["01:20"]),  # one run for all the missed slots
        ("all", ["01:00", "01:10", "01:20"]),  # every missed slot, newest max_catch_up=3 of 6
    ],
)
def test_restart_after_gap_follows_catch_up_policy(
    policy: str, expected_in_gap: list[str], make_runtime: Callable[..., Runtime]
) -> None:
    jobs = JobRegistry([JobSpec.build(TEST_TASK, every="10m", catch_up=policy, max_catch_up=3, name="tenmin")])
    rts = [make_runtime() for _ in range(3)]
    # Before: three schedulers from 00:00 to 00:25 (one-minute steps; the lease must exceed the
    # clock skew drive() allows, two steps).
    clocks = [FakeClock() for _ in rts]
    drive([(Scheduler(rt, clock=c, jobs=jobs, scheduler_id=f"a{i}", lease_s=600), c) for i, (rt, c) in enumerate(zip(rts, clocks))],
          timeline(26, 60))
    before = slot_counts(message_slots(rts))
    assert sorted(s[11:16] for _, s in before) == ["00:00", "00:10", "00:20"]
    # All down from 00:25 to 01:23; then three fresh schedulers (new ids) from 01:23 to 01:45.
    clocks = [FakeClock() for _ in rts]
    drive([(Scheduler(rt, clock=c, jobs=jobs, scheduler_id=f"b{i}", lease_s=600), c) for i, (rt, c) in enumerate(zip(rts, clocks))],
          timeline(23, 60, start=T0 + timedelta(minutes=83)))
    after = slot_counts(message_slots(rts))
    assert max(after.values()) == 1  # nothing fired twice, nothing from before repeated
    new = sorted(s[11:16] for k, s in after if k not in before and (k, s) not in before)
    assert new == sorted(expected_in_gap + ["01:30", "01:40"])


def test_restart_without_gap_neither_repeats_nor_skips(make_runtime: Callable[..., Runtime]) -> None:
    """A fresh scheduler object on every tick is the harshest restart: nothing kept in memory,
    everything comes from the persisted watermark and claims."""
    jobs = concurrency_jobs()
    rt = make_runtime()
    clock = FakeClock()
    for t in timeline(120):
        clock.set(t)
        Scheduler(rt, clock=clock, jobs=jobs, scheduler_id=f"r{t.minute}:{t.second}").tick()
    counts = slot_counts(message_slots([rt]))
    assert max(counts.values()) == 1
    assert set(counts) == expected_slots(jobs, T0, T0 + timedelta(seconds=1190))


# Publish failures after the claim ------------------------------------------------------------------
class FlakyPublish:
    """Fails the first ``failures`` publishes, then passes through."""

    def __init__(self, rt: Runtime, failures: int) -> None:
        self.rt, self.left, self.real = rt, failures, rt.enqueue

    def __call__(self, task_name: str, **kw: Any) -> Any:
        if self.left > 0:
            self.left -= 1
            raise ConnectionError("broker unreachable (test)")
        return self.real(task_name, **kw)


@pytest.mark.parametrize("db, claims", BACKENDS)
def test_publish_failure_after_claim_is_retried(
    db: str, claims: str, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, new_claims = _backend(db, claims, request)
    jobs = JobRegistry([JobSpec.build(TEST_TASK, every=60, name="minutely")])
    a_rt, b_rt = make_runtime(database_url=url), make_runtime(database_url=url)
    a_clock, b_clock = FakeClock(), FakeClock()
    a = Scheduler(a_rt, clock=a_clock, jobs=jobs, claims=new_claims(), scheduler_id="a")
    b = Scheduler(b_rt, clock=b_clock, jobs=jobs, claims=new_claims(), scheduler_id="b")
    monkeypatch.setattr(a_rt, "enqueue", FlakyPublish(a_rt, failures=2))
    r1 = a.tick()
    assert [j for j, _, _ in r1.failed] == ["minutely"] and not r1.fired
    # b, within a's lease, must neither steal nor skip the slot a owes.
    b_clock.advance(10)
    assert not b.tick().fired
    a_clock.advance(10)
    assert a.tick().failed  # second failure, claim renewed
    a_clock.advance(10)
    r3 = a.tick()
    assert [(f.job, f.slot) for f in r3.fired] == [("minutely", T0)]
    b_clock.advance(100)  # long after any lease: still nothing to do for b
    b.tick()
    counts = slot_counts(message_slots([a_rt, b_rt]))
    assert counts[("minutely", T0.isoformat())] == 1
    with a_rt.db.session() as s:
        assert store.is_fired(s, "minutely", T0)


@pytest.mark.parametrize("db, claims", BACKENDS)
def test_claim_of_a_dead_scheduler_is_taken_over_after_the_lease(
    db: str, claims: str, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, new_claims = _backend(db, claims, request)
    jobs = JobRegistry([JobSpec.build(TEST_TASK, every=3600, name="hourly", catch_up="skip")])
    a_rt, b_rt = make_runtime(database_url=url), make_runtime(database_url=url)
    clock = FakeClock()
    a = Scheduler(a_rt, clock=clock, jobs=jobs, claims=new_claims(), scheduler_id="a", lease_s=60)
    b = Scheduler(b_rt, clock=clock, jobs=jobs, claims=new_claims(), scheduler_id="b", lease_s=60, refresh_s=30)
    monkeypatch.setattr(a_rt, "enqueue", FlakyPublish(a_rt, failures=1))
    assert a.tick().failed  # a claimed 00:00, publish failed ... and then a dies (never ticks again)
    clock.advance(59)
    assert not b.tick().fired  # lease still running
    clock.advance(31)  # lease over, and b's periodic re-read (refresh_s=30) notices the owed claim
    fired = b.tick().fired
    # Retried although the skip policy would never fire a 61 s old slot: a claim is a promise.
    assert [(f.job, f.slot) for f in fired] == [("hourly", T0)]
    assert slot_counts(message_slots([a_rt, b_rt])) == {("hourly", T0.isoformat()): 1}


# Pause and resume ---------------------------------------------------------------------------------
def test_pause_is_honoured_by_every_scheduler(make_runtime: Callable[..., Runtime]) -> None:
    jobs = concurrency_jobs()
    rts = [make_runtime() for _ in range(3)]
    clocks = [FakeClock() for _ in rts]
    scheds = [(Scheduler(rt, clock=c, jobs=jobs, scheduler_id=f"s{i}"), c) for i, (rt, c) in enumerate(zip(rts, clocks))]
    drive(scheds, timeline(30))  # 00:00 .. 00:04:50
    paused_at = T0 + timedelta(seconds=295)
    control.pause(rts[0], "every10.0", jobs=jobs, now=paused_at, by="test")
    drive(scheds, timeline(30, start=T0 + timedelta(seconds=300)))  # 00:05:00 .. 00:09:50
    resumed_at = T0 + timedelta(seconds=595)
    out = control.resume(rts[1], "every10.0", jobs=jobs, now=resumed_at, by="test")
    assert out["next_run"] == T0 + timedelta(seconds=600)
    drive(scheds, timeline(30, start=T0 + timedelta(seconds=600)))  # 00:10:00 .. 00:14:50
    counts = slot_counts(message_slots(rts))
    assert max(counts.values()) == 1
    fired = sorted(datetime.fromisoformat(s) for j, s in counts if j == "every10.0")
    assert fired[0] == T0 and fired[-1] == T0 + timedelta(seconds=890)
    assert not [t for t in fired if paused_at < t <= resumed_at]  # nothing while paused, no catch-up after
    assert len(fired) == 30 + 30
    # The other jobs kept running throughout.
    assert sum(1 for j, _ in counts if j == "every10.1") == 90
    rows = control.list_jobs(rts[2], jobs=jobs, now=resumed_at)
    assert {r["job"]: r["paused"] for r in rows}["every10.0"] is False


# Expiry ------------------------------------------------------------------------------------------
def test_expired_slot_message_is_dropped_by_the_worker(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    clock = FakeClock()
    # the runtime's own SlotExpiry, put on the test's clock
    middleware = next(m for m in rt.broker.middleware if isinstance(m, SlotExpiry))
    middleware.clock = clock.epoch
    jobs = JobRegistry([JobSpec.build(TEST_TASK, every=60, expires_s=30, name="expiring", kwargs={"tag": "x"})])
    sched = Scheduler(rt, clock=clock, jobs=jobs, scheduler_id="s")
    assert len(sched.tick().fired) == 1  # 00:00, expires 00:00:30
    (message,) = helpers.queued_messages(rt)
    assert message.options["expires_at"] == int((T0 + timedelta(seconds=30)).timestamp() * 1000)
    helpers.RAN.clear()
    clock.advance(31)  # the worker gets to it too late
    rt.broker.run_until_idle(threads=1)
    assert helpers.RAN == [] and middleware.dropped[TEST_TASK] == 1
    clock.advance(29)  # 00:01:00: the next slot, picked up in time, runs
    assert len(sched.tick().fired) == 1
    clock.advance(5)
    rt.broker.run_until_idle(threads=1)
    assert helpers.RAN == [{"tag": "x"}] and middleware.dropped[TEST_TASK] == 1
    assert not rt.broker.dead_letters  # dropped, not dead-lettered


# Jitter ------------------------------------------------------------------------------------------
def test_jitter_delays_the_enqueue_identically_for_every_scheduler(make_runtime: Callable[..., Runtime]) -> None:
    spec = JobSpec.build(TEST_TASK, every=60, jitter_s=50, name="jittered")
    jobs = JobRegistry([spec])
    rts = [make_runtime() for _ in range(3)]
    clocks = [FakeClock() for _ in rts]
    drive([(Scheduler(rt, clock=c, jobs=jobs, scheduler_id=f"s{i}"), c) for i, (rt, c) in enumerate(zip(rts, clocks))],
          timeline(600, 1))  # one-second steps for ten minutes
    rows = {r.slot: r for r in _fired_rows(rts[0])}
    assert max(slot_counts(message_slots(rts)).values()) == 1
    on_time = {slot: row for slot, row in rows.items() if spec.due_at(slot) >= T0}  # not the first-sight slot
    assert len(on_time) == 10
    for slot, row in on_time.items():
        due = spec.due_at(slot).replace(tzinfo=None)
        # Never before its jittered due time; at the first tick after it (one-second steps, plus the
        # two steps of clock skew drive() allows between schedulers).
        assert due <= row.fired_at <= due + timedelta(seconds=3)
    assert len({spec.jitter(s) for s in on_time}) == len(on_time)  # really jittered, per slot
