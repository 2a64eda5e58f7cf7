"""Rollups: event counts per minute, hour and day, per project and per issue; and their expiry.

Each run recomputes whole buckets from the event index (delete + insert in one transaction), so
running it twice, or concurrently with itself, yields the same rows: idempotent by construction.
Buckets to recompute are those holding events *received* in the lookback window, which also
catches late events with old timestamps. ``rollups.expire`` drops buckets older than their
resolution's retention (pipeline.rollup.RETENTION)."""

from __future__ import annotations

from datetime import datetime, timedelta
from sqlalchemy import delete, func, select

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import Event, Rollup
from eventpipe.pipeline.rollup import RESOLUTIONS, bucket_start, expiry_cutoffs, rollup_counts, series
from eventpipe.tasks.api import TaskContext, task


def _rewrite(s, resolution: str, bucket: datetime, project_id: int | None) -> int:  # type: ignore[no-untyped-def]
    step = RESOLUTIONS[resolution]
    q = select(Event.project_id, Event.issue_id, Event.timestamp).where(Event.timestamp >= bucket, Event.timestamp < bucket + step)
    d = delete(Rollup).where(Rollup.resolution == resolution, Rollup.bucket == bucket)
    if project_id is not None:
        q = q.where(Event.project_id == project_id)
        d = d.where(Rollup.project_id == project_id)
    counts = rollup_counts(((r.project_id, r.issue_id, r.timestamp) for r in s.execute(q)), resolution)
    s.execute(d)
    s.add_all(Rollup(resolution=resolution, bucket=b, project_id=p, issue_id=i, count=c) for (b, p, i), c in counts.items())
    return len(counts)


def recompute(ctx: TaskContext, resolution: str, *, received_since: datetime) -> int:
    """Recompute every bucket touched by events received since ``received_since``; returns rows written."""
    written = 0
    with ctx.db.session() as s:
        touched = {
            bucket_start(ts, resolution)
            for (ts,) in s.execute(select(Event.timestamp).where(Event.received_at >= received_since))
        }
        for bucket in sorted(touched):
            written += _rewrite(s, resolution, bucket, None)
    return written


def recompute_project(db: Database, project_id: int, *, now: datetime | None = None) -> int:
    """Recompute one project's buckets, every resolution, over each resolution's retention (after
    events moved between issues: unmerge, regroup). Buckets older than the project's oldest
    stored event are left alone: their events expired, the counts are all that remains."""
    now = now or utcnow()
    cutoffs = expiry_cutoffs(now)
    written = 0
    with db.session() as s:
        for resolution in RESOLUTIONS:
            touched = {
                bucket_start(ts, resolution)
                for (ts,) in s.execute(
                    select(Event.timestamp).where(Event.project_id == project_id, Event.timestamp >= cutoffs[resolution])
                )
            }
            for bucket in sorted(touched):
                written += _rewrite(s, resolution, bucket, project_id)
    return written


@task("rollups.minute", queue="rollups", max_retries=3, every="60s", schedule={"expires_s": 55})
def minute(ctx: TaskContext, lookback_minutes: float = 3.0) -> int:
    """Recompute minute buckets touched by recently received events (spike checks read them)."""
    return recompute(ctx, "minute", received_since=utcnow() - timedelta(minutes=lookback_minutes))


# Five minutes past the hour (late events of the last hour have arrived by then); each run
# recomputes a lookback window, so a late run is still useful until the next one is queued.
@task("rollups.hourly", queue="rollups", max_retries=3, cron="5 * * * *", schedule={"expires_s": 45 * 60, "catch_up": "once"})
def hourly(ctx: TaskContext, lookback_hours: float = 2.0) -> int:
    """Recompute hourly buckets touched by recently received events."""
    return recompute(ctx, "hour", received_since=utcnow() - timedelta(hours=lookback_hours))


# A quarter past midnight UTC; after downtime run once to catch up.
@task("rollups.daily", queue="rollups", max_retries=3, cron="15 0 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def daily(ctx: TaskContext, lookback_hours: float = 26.0) -> int:
    """Recompute daily buckets touched by recently received events."""
    return recompute(ctx, "day", received_since=utcnow() - timedelta(hours=lookback_hours))


def expire_rollups(db: Database, *, now: datetime | None = None, retention: dict[str, timedelta] | None = None) -> dict[str, int]:
    """Delete buckets older than their resolution's retention; returns rows deleted per resolution."""
    cutoffs = expiry_cutoffs(now or utcnow(), retention)
    out: dict[str, int] = {}
    with db.session() as s:
        for resolution, cutoff in cutoffs.items():
            out[resolution] = s.execute(
                delete(Rollup).where(Rollup.resolution == resolution, Rollup.bucket < cutoff)
            ).rowcount or 0
    return out


@task("rollups.expire", queue="rollups", max_retries=3, cron="30 * * * *", schedule={"expires_s": 3000})
def expire(ctx: TaskContext) -> dict[str, int]:
    """Drop rollup buckets past their resolution's retention (minute 1 day, hour 30 days, day 400 days)."""
    return expire_rollups(ctx.db)


def rollup_series(
    db: Database, *, project_id: int, issue_id: int = 0, resolution: str = "minute", buckets: int = 60, now: datetime | None = None
) -> list[int]:
    """The last ``buckets`` bucket counts of an issue (0: the project total), oldest first, the
    current (incomplete) bucket last: the input of :func:`eventpipe.pipeline.rollup.spike`."""
    end = bucket_start(now or utcnow(), resolution) + RESOLUTIONS[resolution]
    start = end - RESOLUTIONS[resolution] * buckets
    with db.session() as s:
        rows = s.execute(
            select(Rollup.bucket, func.sum(Rollup.count))
            .where(
                Rollup.resolution == resolution,
                Rollup.project_id == project_id,
                Rollup.issue_id == issue_id,
                Rollup.bucket >= start,
                Rollup.bucket < end,
            )
            .group_by(Rollup.bucket)
        ).all()
    return series(((b, int(c)) for b, c in rows), start, end, resolution)
