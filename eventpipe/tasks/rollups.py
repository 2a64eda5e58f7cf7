"""Rollups: event counts per hour and per day, per project and per issue.

Each run recomputes whole buckets from the event index (delete + insert in one transaction), so
running it twice, or concurrently with itself, yields the same rows: idempotent by construction.
Buckets to recompute are those holding events *received* in the lookback window, which also
catches late events with old timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta
from sqlalchemy import delete, select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Event, Rollup
from eventpipe.pipeline.rollup import RESOLUTIONS, bucket_start, rollup_counts
from eventpipe.tasks.api import TaskContext, task


def recompute(rt: TaskContext, resolution: str, *, received_since: datetime) -> int:
    """Recompute every bucket touched by events received since ``received_since``; returns rows written."""
    step = RESOLUTIONS[resolution]
    written = 0
    with rt.db.session() as s:
        touched = {
            bucket_start(ts, resolution)
            for (ts,) in s.execute(select(Event.timestamp).where(Event.received_at >= received_since))
        }
        for bucket in sorted(touched):
            rows = s.execute(
                select(Event.project_id, Event.issue_id, Event.timestamp).where(
                    Event.timestamp >= bucket, Event.timestamp < bucket + step
                )
            ).all()
            counts = rollup_counts(((r.project_id, r.issue_id, r.timestamp) for r in rows), resolution)
            s.execute(delete(Rollup).where(Rollup.resolution == resolution, Rollup.bucket == bucket))
            s.add_all(
                Rollup(resolution=resolution, bucket=b, project_id=p, issue_id=i, count=c)
                for (b, p, i), c in counts.items()
            )
            written += len(counts)
    return written


# Five minutes past the hour (late events of the last hour have arrived by then); each run
# recomputes a lookback window, so a late run is still useful until the next one is queued.
@task("rollups.hourly", queue="rollups", max_retries=3, cron="5 * * * *", schedule={"expires_s": 45 * 60, "catch_up": "once"})
def hourly(rt: TaskContext, lookback_hours: float = 2.0) -> int:
    """Recompute hourly buckets touched by recently received events."""
    return recompute(rt, "hour", received_since=utcnow() - timedelta(hours=lookback_hours))


# A quarter past midnight UTC; after downtime run once to catch up.
@task("rollups.daily", queue="rollups", max_retries=3, cron="15 0 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def daily(rt: TaskContext, lookback_hours: float = 26.0) -> int:
    """Recompute daily buckets touched by recently received events."""
    return recompute(rt, "day", received_since=utcnow() - timedelta(hours=lookback_hours))
