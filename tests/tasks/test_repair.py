"""buffers.flush_project and rollups.backfill on SQLite and Postgres."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from eventpipe.metadata.models import BufferedCounter, Issue, Rollup
from eventpipe.metadata.queries import ensure_project
from eventpipe.tasks.rollups import rollup_series
from tests.support.events import crash, ingest, issue_of


def test_flush_project_folds_only_that_projects_counters(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")
    a, b = [crash() for _ in range(3)], [crash() for _ in range(2)]
    ingest(rt, 1, a)
    ingest(rt, 2, b)
    rt.enqueue("buffers.flush_project", project_id=1)
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        seen = {p: t for p, t in s.execute(select(Issue.project_id, Issue.times_seen)).all()}
        pending = s.scalar(select(func.coalesce(func.sum(BufferedCounter.delta), 0)).where(BufferedCounter.project_id == 2))
    assert seen == {1: 3, 2: 0} and pending == 2
    rt.enqueue("buffers.flush_project", project_id=1)  # nothing left for project 1: counts stay
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.scalar(select(Issue.times_seen).where(Issue.project_id == 1)) == 3


def test_backfill_rebuilds_lost_rollups(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    now = time.time()
    events = [crash(ts=now - 60 * m) for m in (0, 0, 1, 5)]
    ingest(rt, 1, events)
    issue = issue_of(rt, events[0]["event_id"])
    with rt.db.session() as s:
        s.execute(delete(Rollup))  # lost (a restore without the rollups table)
    at = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    for _ in range(2):  # a rerun writes the same rows
        rt.enqueue("rollups.backfill", project_id=1)
        rt.broker.run_until_idle()
        minutes = rollup_series(rt.db, project_id=1, issue_id=issue, resolution="minute", buckets=10, now=at)
        assert sum(minutes) == 4 and minutes[-1] == 2
        assert sum(rollup_series(rt.db, project_id=1, resolution="day", buckets=2, now=at)) == 4
