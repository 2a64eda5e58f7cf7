"""Rollup math: time buckets and counts per (bucket, project, issue). No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

RESOLUTIONS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
PROJECT_TOTAL = 0  # issue_id used for a project's total row


def bucket_start(ts: datetime, resolution: str) -> datetime:
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
