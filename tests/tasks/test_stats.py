"""stats.collect_platforms on SQLite and Postgres: per-day platform counts, rerun-safe."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from eventpipe.metadata.models import PlatformStat
from eventpipe.metadata.queries import ensure_project
from eventpipe.tasks.stats import platform_usage
from tests.support.events import crash, ingest


def test_collect_platforms_counts_events_and_bytes_per_day(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")
    now = time.time()
    js = crash("TypeError", "render")
    js["platform"] = "javascript"
    ingest(rt, 1, [crash(ts=now), crash(ts=now - 86400), js])
    ingest(rt, 2, [crash(ts=now)])
    for _ in range(2):  # a rerun (or a redelivery) writes the same rows
        rt.enqueue("stats.collect_platforms", days=3)
        rt.broker.run_until_idle()
        usage = platform_usage(rt.db)
        assert [(r["project_id"], r["platform"], r["events"]) for r in usage] == [(1, "python", 2), (1, "javascript", 1), (2, "python", 1)]
        assert all(r["bytes"] > 0 for r in usage)
    with rt.db.session() as s:
        assert s.scalar(select(func.count(func.distinct(PlatformStat.day)))) == 2
    assert platform_usage(rt.db, project_id=2, days=1)[0]["events"] == 1
