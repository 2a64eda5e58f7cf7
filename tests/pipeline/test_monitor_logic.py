"""Cron monitor judgement: missed slots and failed check-ins (pure logic)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eventpipe.pipeline.monitors import CheckInFact, MonitorError, judge, normalize_status, slugify, validate_schedule

M = timedelta(minutes=5)


def test_hourly_slots_missed_ok_and_error() -> None:
    start = datetime(2026, 1, 1, 9, 30)
    now = datetime(2026, 1, 1, 13, 10)
    checkins = [
        CheckInFact(datetime(2026, 1, 1, 10, 1), "ok"),  # 10:00 fine
        CheckInFact(datetime(2026, 1, 1, 12, 2), "error"),  # 12:00 failed (and it is an error)
    ]  # 11:00 and 13:00 missed
    failures, watermark = judge("0 * * * *", M, start, now, checkins)
    assert watermark == now
    assert [(f.at.hour, f.reason) for f in failures] == [(11, "missed"), (12, "error"), (13, "missed")]
    # the next run judges only what is new
    again, _ = judge("0 * * * *", M, now, now + timedelta(minutes=1), checkins)
    assert again == []


def test_validation() -> None:
    assert validate_schedule("0  *  * * *") == "0 * * * *"
    with pytest.raises(MonitorError, match="cron"):
        validate_schedule("every hour")
    assert slugify("Nightly Backup!") == "nightly-backup"
    assert normalize_status("failed") == "error"
    with pytest.raises(MonitorError, match="ok, error"):
        normalize_status("meh")
