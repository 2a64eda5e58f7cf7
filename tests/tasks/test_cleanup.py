"""cleanup.* tasks on the embedded broker against SQLite and Postgres."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import DeadLetter, Event, Issue, KVOrphanCandidate, Project, ScheduledDeletion
from eventpipe.metadata.queries import ensure_project
from eventpipe.pipeline.keys import body_key
from eventpipe.tasks.buffers import flush_counters
from eventpipe.tasks.cleanup import expired_counts, retention_sweep, run_scheduled_deletions, start_delete_project
from eventpipe.tasks.groups import start_delete
from tests.support.events import crash, ingest, issue_of

DAY = 86400


def _count(rt, model, *where):
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_retention_sweep_deletes_old_rows_then_bodies_and_empty_issues(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")  # default retention (90 days): nothing expires
    with rt.db.session() as s:
        s.execute(update(Project).where(Project.id == 1).values(retention_days=1))
    old_x = [crash(function="x", ts=time.time() - 2 * DAY) for _ in range(3)]
    new_x = [crash(function="x") for _ in range(2)]
    old_y = [crash(function="y", ts=time.time() - 2 * DAY)]
    other = [crash(function="x", ts=time.time() - 2 * DAY)]
    ingest(rt, 1, old_x + new_x + old_y)
    ingest(rt, 2, other)
    flush_counters(rt)
    x, y = issue_of(rt, new_x[0]["event_id"]), issue_of(rt, old_y[0]["event_id"])
    assert expired_counts(rt.db) == {1: 4, 2: 0}

    assert retention_sweep(rt) == 2
    rt.broker.run_until_idle()
    assert _count(rt, Event, Event.project_id == 1) == 2
    assert all(rt.store.get(body_key(1, e["event_id"])) is None for e in old_x + old_y)
    assert all(rt.store.get(body_key(1, e["event_id"])) is not None for e in new_x)
    assert _count(rt, Event, Event.project_id == 2) == 1
    with rt.db.session() as s:
        assert s.get(Issue, x).times_seen == 5  # counts outlive the events
        assert s.get(Issue, y) is None  # no events left, last seen before the cutoff
    assert expired_counts(rt.db) == {1: 0, 2: 0}


def test_delete_project_removes_everything_it_owns(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")
    ingest(rt, 1, [crash(function=f) for f in "abcab"])
    ingest(rt, 2, [crash()])
    stray = body_key(1, uuid.uuid4().hex)  # a body that never got a row
    rt.store.put(stray, b"{}")

    start_delete_project(rt, 1, actor="alice", chunk=2)
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.get(Project, 1) is None
        assert s.scalar(select(func.count()).select_from(Issue).where(Issue.project_id == 1)) == 0
        assert s.scalar(select(ScheduledDeletion.done_at).where(ScheduledDeletion.kind == "project")) is not None
    assert list(rt.store.keys("1/")) == []
    assert _count(rt, Event, Event.project_id == 2) == 1 and len(list(rt.store.keys("2/"))) == 1


def test_kv_orphans_deletes_bodies_without_rows_after_the_grace_period(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    kept = crash()
    ingest(rt, 1, [kept])
    orphan = body_key(1, uuid.uuid4().hex)
    rt.store.put(orphan, b"{}")
    rt.store.put("_eventpipe/checkpoint", b"1")  # not a body key: never touched

    rt.enqueue("cleanup.kv_orphans", grace_hours=0)
    rt.broker.run_until_idle()
    assert rt.store.get(orphan) is not None  # first sighting: a candidate only
    assert _count(rt, KVOrphanCandidate) == 1
    rt.enqueue("cleanup.kv_orphans", grace_hours=0)
    rt.broker.run_until_idle()
    assert rt.store.get(orphan) is None
    assert rt.store.get(body_key(1, kept["event_id"])) is not None
    assert rt.store.get("_eventpipe/checkpoint") == b"1"
    assert _count(rt, KVOrphanCandidate) == 0


def test_dead_letters_expire(make_runtime, db_url):
    rt = make_runtime(database_url=db_url, task_modules=("tests.support.tasks",))
    rt.enqueue("testing.permanent", what="old")
    rt.enqueue("testing.permanent", what="new")
    rt.broker.run_until_idle()
    assert _count(rt, DeadLetter) == 2
    with rt.db.session() as s:
        old = next(d for d in s.scalars(select(DeadLetter)) if d.message["kwargs"]["what"] == "old")
        old.failed_at = utcnow() - timedelta(days=20)
    rt.enqueue("cleanup.dead_letters_expire")
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        left = list(s.scalars(select(DeadLetter)))
    assert len(left) == 1 and left[0].message["kwargs"]["what"] == "new"


def test_run_scheduled_deletions_resends_stale_ones(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ev = crash()
    ingest(rt, 1, [ev])
    issue = issue_of(rt, ev["event_id"])
    start_delete(rt, [issue], actor="alice")
    rt.broker.run_until_idle()
    # a deletion whose message was lost: recorded, not done, enqueued long ago
    with rt.db.session() as s:
        s.execute(update(ScheduledDeletion).values(done_at=None, last_enqueued_at=utcnow() - timedelta(hours=1)))
    assert run_scheduled_deletions(rt) == 1
    assert run_scheduled_deletions(rt) == 0  # just re-sent: not stale
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.scalar(select(ScheduledDeletion.done_at)) is not None
