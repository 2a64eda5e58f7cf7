"""rollups.minute and rollups.expire on the embedded broker, SQLite and Postgres; the series a
spike check reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Rollup
from eventpipe.metadata.queries import ensure_project
from eventpipe.pipeline.rollup import spike
from eventpipe.tasks.rollups import rollup_series
from tests.support.events import crash, ingest, issue_of


def _rows(rt, resolution):
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(Rollup).where(Rollup.resolution == resolution))


def test_minute_rollups_feed_the_spike_check(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    now = time.time()
    quiet = [crash(ts=now - 60 * m) for m in range(2, 7)]  # one event a minute, 2-6 minutes ago
    burst = [crash(ts=now) for _ in range(12)]
    ingest(rt, 1, quiet + burst)
    rt.enqueue("rollups.minute", lookback_minutes=10)
    rt.broker.run_until_idle()
    issue = issue_of(rt, burst[0]["event_id"])
    at = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)  # the burst's minute is the last bucket
    counts = rollup_series(rt.db, project_id=1, issue_id=issue, resolution="minute", buckets=7, now=at)
    assert sum(counts) == 17 and counts[-1] == 12
    assert spike(counts, 3.0, min_events=10)
    assert rollup_series(rt.db, project_id=1, resolution="minute", buckets=7, now=at) == counts  # project total
    assert not spike(counts[:-1], 3.0, min_events=10)


def test_expire_drops_buckets_past_each_resolutions_retention(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    now = utcnow().replace(second=0, microsecond=0)
    with rt.db.session() as s:
        for resolution, age in (("minute", timedelta(days=2)), ("minute", timedelta(hours=1)),
                                ("hour", timedelta(days=40)), ("hour", timedelta(days=3)),
                                ("day", timedelta(days=500)), ("day", timedelta(days=100))):
            bucket = now - age
            if resolution == "hour":
                bucket = bucket.replace(minute=0)
            if resolution == "day":
                bucket = bucket.replace(hour=0, minute=0)
            s.add(Rollup(resolution=resolution, bucket=bucket, project_id=1, issue_id=0, count=5))
    rt.enqueue("rollups.expire")
    rt.broker.run_until_idle()
    assert (_rows(rt, "minute"), _rows(rt, "hour"), _rows(rt, "day")) == (1, 1, 1)
