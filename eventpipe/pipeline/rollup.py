"""Rollup math: time buckets, counts per (bucket, project, issue), retention per resolution and
the spike test. No I/O.

Three resolutions, each kept as long as it is useful: minute buckets for alerting on the last
hour (kept a day), hour buckets for graphs (kept 30 days), day buckets for reports (kept 400 days).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

RESOLUTIONS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
RETENTION: dict[str, timedelta] = {
    "minute": timedelta(days=1),
    "hour": timedelta(days=30),
    "day": timedelta(days=400),
}
PROJECT_TOTAL = 0  # issue_id used for a project's total row


def bucket_start(ts: datetime, resolution: str) -> datetime:
    if resolution == "minute":
        return ts.replace(second=0, microsecond=0)
    if resolution == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    if resolution == "day":
        return ts.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown rollup resolution {resolution!r}; expected one of {sorted(RESOLUTIONS)}")


def rollup_counts(
    events: Iterable[tuple[int, int, datetime]], resolution: str
) -> Counter[tuple[datetime, int, int]]:
    """Count (project_id, issue_id, timestamp) rows per (bucket, project, issue) plus project totals."""
    counts: Counter[tuple[datetime, int, int]] = Counter()
    for project_id, issue_id, ts in events:
        bucket = bucket_start(ts, resolution)
        counts[(bucket, project_id, issue_id)] += 1
        counts[(bucket, project_id, PROJECT_TOTAL)] += 1
    return counts


def buckets_between(start: datetime, end: datetime, resolution: str) -> list[datetime]:
    """Every bucket start that overlaps [start, end)."""
    step = RESOLUTIONS[resolution]
    out, cur = [], bucket_start(start, resolution)
    while cur < end:
        out.append(cur)
        cur += step
    return out


def expiry_cutoffs(now: datetime, retention: dict[str, timedelta] | None = None) -> dict[str, datetime]:
    """Per resolution, the first bucket start that is kept: older buckets expire."""
    kept = {**RETENTION, **(retention or {})}
    return {res: bucket_start(now - kept[res], res) for res in RESOLUTIONS}


def series(rows: Iterable[tuple[datetime, int]], start: datetime, end: datetime, resolution: str) -> list[int]:
    """Counts of every bucket in [start, end), oldest first, with zeros for missing buckets."""
    found = dict(rows)
    return [int(found.get(b, 0)) for b in buckets_between(start, end, resolution)]


@dataclass(frozen=True)
class Spike:
    """The newest bucket against the mean of the ones before it."""

    current: int
    baseline: float
    ratio: float | None  # current / baseline, None when the baseline is zero
    is_spike: bool

    def __bool__(self) -> bool:
        return self.is_spike


def spike(rollup_counts: Sequence[int], threshold: float, *, min_events: int = 1) -> Spike:
    """Is the last bucket a spike? ``rollup_counts`` are bucket counts oldest first (the last one is
    the bucket under test, the others the baseline). A spike is a last bucket of at least
    ``min_events`` events and at least ``threshold`` times the baseline mean; with an all-zero
    baseline any count of ``min_events`` or more is a spike."""
    if threshold <= 0:
        raise ValueError("threshold must be positive (e.g. 3.0 for three times the usual rate)")
    if not rollup_counts:
        return Spike(0, 0.0, None, False)
    *history, current = rollup_counts
    baseline = sum(history) / len(history) if history else 0.0
    ratio = current / baseline if baseline > 0 else None
    hit = current >= min_events and (ratio is None or ratio >= threshold)
    return Spike(current, baseline, ratio, hit)
