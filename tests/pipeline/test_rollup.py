"""Rollup math: buckets of each resolution, expiry cutoffs, series with zeros, the spike test."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eventpipe.pipeline.rollup import bucket_start, expiry_cutoffs, rollup_counts, series, spike

T = datetime(2026, 11, 29, 17, 42, 31, 5000)


def test_buckets_and_counts():
    assert bucket_start(T, "minute") == datetime(2026, 11, 29, 17, 42)
    assert bucket_start(T, "hour") == datetime(2026, 11, 29, 17)
    assert bucket_start(T, "day") == datetime(2026, 11, 29)
    counts = rollup_counts([(1, 7, T), (1, 7, T + timedelta(seconds=10)), (1, 8, T + timedelta(minutes=1))], "minute")
    assert counts[(datetime(2026, 11, 29, 17, 42), 1, 7)] == 2
    assert counts[(datetime(2026, 11, 29, 17, 42), 1, 0)] == 2
    assert counts[(datetime(2026, 11, 29, 17, 43), 1, 0)] == 1


def test_expiry_cutoffs_per_resolution():
    cut = expiry_cutoffs(T)
    assert cut["minute"] == datetime(2026, 11, 28, 17, 42)
    assert cut["hour"] == datetime(2026, 10, 30, 17)
    assert cut["day"] == datetime(2025, 10, 25)
    assert expiry_cutoffs(T, {"minute": timedelta(hours=2)})["minute"] == datetime(2026, 11, 29, 15, 42)


def test_series_fills_gaps():
    start = datetime(2026, 11, 29, 17, 0)
    rows = [(datetime(2026, 11, 29, 17, 1), 4), (datetime(2026, 11, 29, 17, 3), 2)]
    assert series(rows, start, start + timedelta(minutes=4), "minute") == [0, 4, 0, 2]


@pytest.mark.parametrize(
    ("counts", "threshold", "min_events", "expected"),
    [
        ([10, 12, 8, 10, 40], 3.0, 1, True),
        ([10, 12, 8, 10, 25], 3.0, 1, False),
        ([0, 0, 0, 5], 3.0, 1, True),
        ([0, 0, 0, 5], 3.0, 10, False),
        ([1, 1, 1, 4], 3.0, 10, False),
        ([], 3.0, 1, False),
    ],
)
def test_spike(counts, threshold, min_events, expected):
    result = spike(counts, threshold, min_events=min_events)
    assert bool(result) is expected
    if counts:
        assert result.current == counts[-1]


def test_spike_reports_ratio_and_rejects_bad_threshold():
    result = spike([10, 10, 30], 2.0)
    assert result.baseline == 10 and result.ratio == 3.0
    with pytest.raises(ValueError, match="threshold"):
        spike([1, 2], 0)
