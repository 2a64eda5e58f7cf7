"""Job declaration, slot arithmetic, cron edge cases (as croniter defines them) and catch-up plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from eventpipe.errors import UnknownJob
from eventpipe.schedules.spec import (
    JobRegistry,
    JobSpec,
    ScheduleError,
    parse_duration,
    periodic,
)
from eventpipe.schedules.plan import plan

U = UTC


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def cron_slots(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    spec = JobSpec.build("t", cron=expr, tz=tz)
    return spec.slots_between(start, end)


def library_slots(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """What croniter itself says, walking forwards in the zone: the reference for every cron test."""
    it = croniter(expr, start.astimezone(ZoneInfo(tz)))
    out = []
    while True:
        t = it.get_next(datetime).astimezone(UTC)
        if t > end:
            return out
        out.append(t)


# Declaration --------------------------------------------------------------------------------------
def test_durations() -> None:
    assert parse_duration("10s") == 10
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration(7) == 7
    assert parse_duration("2d") == 172800
    with pytest.raises(ScheduleError, match="10s"):
        parse_duration("ten seconds")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of every="),
        ({"every": "10s", "cron": "* * * * *"}, "exactly one of every="),
        ({"cron": "61 * * * *"}, "not a valid cron expression"),
        ({"every": "0.5s"}, "at least 1 second"),
        ({"every": "10s", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"every": "10s", "jitter_s": 10}, "smaller than every"),
        ({"every": "10s", "catch_up": "sometimes"}, "skip, once, all"),
        ({"every": "10s", "max_catch_up": 0}, "positive integer"),
        ({"every": "10s", "expires_s": 0}, "expires_s must be > 0"),
        ({"every": "10s", "kwargs": {"x": object()}}, "JSON values"),
        ({"every": "10s", "kwargs": {"options": 1}}, "reserved"),
    ],
)
def test_bad_declarations_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as err:
        JobSpec.build("buffers.flush", **kwargs)
    assert "buffers.flush" in str(err.value)


def test_periodic_registers_with_defaults_and_rejects_conflicts() -> None:
    reg = JobRegistry()
    spec = periodic("rollups.hourly", cron="5 * * * *", registry=reg)
    assert spec.name == "rollups.hourly" and reg.get("rollups.hourly") is spec
    periodic("rollups.hourly", cron="5 * * * *", registry=reg)  # same spec again: fine (re-import)
    with pytest.raises(ScheduleError, match="declared twice"):
        periodic("rollups.hourly", cron="6 * * * *", registry=reg)
    periodic("rollups.hourly", cron="6 * * * *", name="rollups.hourly.late", registry=reg)
    assert [s.name for s in reg.all()] == ["rollups.hourly", "rollups.hourly.late"]
    with pytest.raises(UnknownJob, match="known: rollups.hourly, rollups.hourly.late"):
        reg.get("nope")


def test_pipeline_jobs_are_declared() -> None:
    from eventpipe.schedules.spec import load_jobs

    reg = load_jobs()
    assert reg.get("buffers.flush").every_s == 10
    assert reg.get("rollups.hourly").cron == "5 * * * *"
    assert reg.get("rollups.daily").cron == "15 0 * * *"
    assert all(s.expires_s for s in reg.all())


# Interval grid ------------------------------------------------------------------------------------
def test_interval_grid_is_epoch_aligned() -> None:
    spec = JobSpec.build("t", every="5m")
    assert spec.next_after(utc(2026, 1, 1, 12, 3, 7)) == utc(2026, 1, 1, 12, 5)
    assert spec.next_after(utc(2026, 1, 1, 12, 5)) == utc(2026, 1, 1, 12, 10)  # strictly after
    back = list(zip(range(3), spec.slots_back(utc(2026, 1, 1, 12, 5), None)))
    assert [s for _, s in back] == [utc(2026, 1, 1, 12, 5), utc(2026, 1, 1, 12, 0), utc(2026, 1, 1, 11, 55)]


def test_backwards_and_forwards_agree_for_intervals() -> None:
    spec = JobSpec.build("t", every=7)
    a, b = utc(2026, 3, 1), utc(2026, 3, 1, 2)
    assert list(reversed(list(spec.slots_back(b, a)))) == spec.slots_between(a, b)


# Cron edge cases, as the library defines them ------------------------------------------------------
DST_CASES = [
    # Berlin: spring forward 2026-03-29 02:00 -> 03:00; fall back 2026-10-25 03:00 -> 02:00
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27), utc(2026, 3, 31)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23), utc(2026, 10, 27)),
    ("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 20), utc(2026, 3, 29, 6)),
    ("*/15 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 20), utc(2026, 10, 25, 6)),
    # New York: spring forward 2026-03-08 02:00 -> 03:00; fall back 2026-11-01 02:00 -> 01:00
    ("30 2 * * *", "America/New_York", utc(2026, 3, 6), utc(2026, 3, 10)),
    ("30 1 * * *", "America/New_York", utc(2026, 10, 30), utc(2026, 11, 3)),
    ("0 12 * * MON", "America/New_York", utc(2026, 2, 20), utc(2026, 3, 20)),
]


@pytest.mark.parametrize("expr, tz, start, end", DST_CASES)
def test_cron_follows_the_library_across_dst(expr: str, tz: str, start: datetime, end: datetime) -> None:
    spec = JobSpec.build("t", cron=expr, tz=tz)
    forwards = spec.slots_between(start, end)
    assert forwards == library_slots(expr, tz, start, end)
    # The scheduler walks backwards from "now"; it must see the very same slots.
    assert list(reversed(list(spec.slots_back(end, start)))) == forwards
    assert len(set(forwards)) == len(forwards)  # distinct UTC instants, so distinct claims


def test_berlin_dst_concrete_behaviour() -> None:
    # Spring forward: 02:30 does not exist; croniter moves it to 03:00 CEST (01:00 UTC).
    spring = cron_slots("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12))
    assert spring == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    # Fall back: 02:30 happens twice; croniter fires at both instants (two distinct slots).
    fall = cron_slots("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert fall == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]
    # Hourly jobs stay one real hour apart through both changes.
    hourly = cron_slots("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22), utc(2026, 10, 25, 4))
    assert all(b - a == timedelta(hours=1) for a, b in zip(hourly, hourly[1:]))


def test_new_york_dst_concrete_behaviour() -> None:
    spring = cron_slots("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 9, 12))
    assert spring == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]  # 03:00 EDT, then 02:30 EDT
    fall = cron_slots("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 12))
    assert fall == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)]  # 01:30 EDT and 01:30 EST


def test_month_ends_and_steps() -> None:
    year = (utc(2026, 1, 1), utc(2026, 12, 31, 23, 59))
    assert [d.day for d in cron_slots("0 0 L * *", "UTC", *year)] == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert [d.month for d in cron_slots("0 0 31 * *", "UTC", *year)] == [1, 3, 5, 7, 8, 10, 12]
    assert [d.day for d in cron_slots("0 0 29 2 *", "UTC", utc(2026, 1, 1), utc(2029, 1, 1))] == [29]  # 2028
    day = cron_slots("*/20 9-10 * * MON-FRI", "UTC", utc(2026, 11, 20), utc(2026, 11, 23, 23))  # Fri..Mon
    assert [d.strftime("%a %H:%M") for d in day] == [
        "Fri 09:00", "Fri 09:20", "Fri 09:40", "Fri 10:00", "Fri 10:20", "Fri 10:40",
        "Mon 09:00", "Mon 09:20", "Mon 09:40", "Mon 10:00", "Mon 10:20", "Mon 10:40",
    ]
    for expr in ("0 0 L * *", "*/20 9-10 * * MON-FRI", "5 0-23/6 1,15 * *"):
        assert cron_slots(expr, "Europe/Berlin", *year) == library_slots(expr, "Europe/Berlin", *year)


# Jitter -------------------------------------------------------------------------------------------
def test_jitter_is_deterministic_per_slot_and_bounded() -> None:
    a = JobSpec.build("t", every=60, jitter_s=30)
    b = JobSpec.build("t", every=60, jitter_s=30)
    slots = a.slots_between(utc(2026, 1, 1), utc(2026, 1, 2))
    js = [a.jitter(s) for s in slots]
    assert js == [b.jitter(s) for s in slots]  # every scheduler agrees
    assert all(timedelta(0) <= j < timedelta(seconds=30) for j in js)
    assert len(set(js)) > len(js) // 2  # actually spread


# Catch-up plans -----------------------------------------------------------------------------------
def test_plan_policies_after_a_gap() -> None:
    base = dict(every=60, expires_s=None)
    w = utc(2026, 1, 1, 0, 0)
    now = utc(2026, 1, 1, 0, 10, 30)  # ten slots missed; the newest (00:10) is 30 s old
    skip = plan(JobSpec.build("t", **base), w, now)
    assert skip.fire == [utc(2026, 1, 1, 0, 10)] and skip.skipped == 9 and skip.watermark == utc(2026, 1, 1, 0, 10)
    late = plan(JobSpec.build("t", grace_s=20, **base), w, now)  # newest is 30 s old > grace
    assert late.fire == [] and late.skipped == 10 and late.watermark == utc(2026, 1, 1, 0, 10)
    once = plan(JobSpec.build("t", catch_up="once", grace_s=20, **base), w, now)
    assert once.fire == [utc(2026, 1, 1, 0, 10)] and once.skipped == 9
    everything = plan(JobSpec.build("t", catch_up="all", **base), w, now)
    assert everything.fire == [utc(2026, 1, 1, 0, m) for m in range(1, 11)] and everything.skipped == 0
    capped = plan(JobSpec.build("t", catch_up="all", max_catch_up=3, **base), w, now)
    assert capped.fire == [utc(2026, 1, 1, 0, m) for m in (8, 9, 10)] and capped.skipped == 7
    cron = plan(JobSpec.build("t", cron="* * * * *", catch_up="all", max_catch_up=2), w, now)
    assert cron.fire == [utc(2026, 1, 1, 0, 9), utc(2026, 1, 1, 0, 10)] and cron.skipped == 8


def test_plan_first_sight_does_not_catch_up() -> None:
    daily = JobSpec.build("t", cron="15 0 * * *", catch_up="once")
    p = plan(daily, None, utc(2026, 1, 1, 12))
    assert p.fire == [] and p.watermark == utc(2026, 1, 1, 0, 15)


def test_plan_waits_for_jitter() -> None:
    spec = JobSpec.build("t", every=60, jitter_s=59)
    slot = utc(2026, 1, 1, 0, 1)
    due = spec.due_at(slot)
    before = plan(spec, utc(2026, 1, 1, 0, 0), due - timedelta(microseconds=1))
    assert before.fire == [] and before.watermark == utc(2026, 1, 1, 0, 0)
    assert plan(spec, utc(2026, 1, 1, 0, 0), due).fire == [slot]
