"""Usage statistics: events and stored bytes per project, platform and day.

``stats.collect_platforms`` recomputes whole days from the event index (delete + insert in one
transaction), so a rerun or a redelivery writes the same rows. It runs daily for the last few
days (late events land in past days); ``days`` widens the window by hand after an outage. The
table outlives event retention: it is what remains of expired events' volume."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import Event, PlatformStat
from eventpipe.tasks.api import TaskContext, task


def _day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def collect_platforms(db: Database, *, days: int = 3, now: datetime | None = None) -> int:
    """Recompute the last ``days`` days (today included); returns rows written."""
    today = _day(now or utcnow())
    written = 0
    with db.session() as s:
        for back in range(days):
            start = today - timedelta(days=back)
            end = start + timedelta(days=1)
            counts = s.execute(
                select(Event.project_id, Event.platform, func.count(), func.coalesce(func.sum(Event.size), 0))
                .where(Event.timestamp >= start, Event.timestamp < end)
                .group_by(Event.project_id, Event.platform)
            ).all()
            s.execute(delete(PlatformStat).where(PlatformStat.day == start))
            s.add_all(
                PlatformStat(day=start, project_id=p, platform=platform, events=int(n), bytes=int(size))
                for p, platform, n, size in counts
            )
            written += len(counts)
    return written


# Shortly after midnight UTC; after downtime run once (the window covers the days missed).
@task("stats.collect_platforms", queue="stats", max_retries=3, cron="25 0 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def collect_platforms_task(ctx: TaskContext, *, days: int = 3) -> int:
    """Record events and bytes per project, platform and day (what each SDK sends, what it costs)."""
    return collect_platforms(ctx.db, days=days)


def platform_usage(db: Database, *, project_id: int | None = None, days: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """Totals per project and platform over the last ``days`` days, largest first."""
    since = _day(now or utcnow()) - timedelta(days=days - 1)
    q = select(PlatformStat.project_id, PlatformStat.platform, func.sum(PlatformStat.events), func.sum(PlatformStat.bytes)).where(
        PlatformStat.day >= since
    )
    if project_id is not None:
        q = q.where(PlatformStat.project_id == project_id)
    with db.session() as s:
        rows = s.execute(q.group_by(PlatformStat.project_id, PlatformStat.platform)).all()
    out = [{"project_id": p, "platform": pl, "events": int(n), "bytes": int(b)} for p, pl, n, b in rows]
    return sorted(out, key=lambda r: (-r["events"], r["project_id"], r["platform"]))
