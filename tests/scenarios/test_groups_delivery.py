"""Merge and regroup on RabbitMQ + Postgres with real worker subprocesses, where delivery matters:
chunks re-enqueue themselves through the broker, and a duplicated message (as a redelivery after
a crash produces) must not move or count anything twice."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from tests.support.workers import wait_for

pytestmark = pytest.mark.rabbitmq


def crash(etype: str, function: str) -> dict:
    return {"event_id": uuid.uuid4().hex, "timestamp": time.time(), "exception": {"values": [
        {"type": etype, "value": "x", "stacktrace": {"frames": [{"module": "app", "function": function, "in_app": True}]}}]}}


def test_merge_and_regroup_with_duplicated_messages(rabbit_env, start_worker, pg_url, monkeypatch):
    monkeypatch.setenv("EVENTPIPE_DATABASE_URL", pg_url)
    from eventpipe.ingest.submit import submit_many
    from eventpipe.metadata.grouping_rules import set_rules
    from eventpipe.metadata.issues import list_issues, show_issue
    from eventpipe.metadata.models import Event
    from eventpipe.metadata.queries import ensure_project, totals
    from eventpipe.runtime import open_runtime
    from eventpipe.tasks.groups import start_merge
    from eventpipe.tasks.regroup import regroup_status, start_regroup

    rt = open_runtime()
    ensure_project(rt.db, 1, "api")
    events = [crash("ConnectionError", f) for f in ("a", "b", "c") for _ in range(20)] + [crash("KeyError", "k") for _ in range(10)]
    assert len(submit_many(rt, 1, events).accepted) == 70
    start_worker("--processes", "1", "--threads", "4", extra_env={"EVENTPIPE_DATABASE_URL": pg_url})
    wait_for(lambda: totals(rt.db)["events_stored"] == 70, 180, "70 events saved")

    def issue(event):
        with rt.db.session() as s:
            return s.scalar(select(Event.issue_id).where(Event.event_id == event["event_id"]))

    a, b, c = issue(events[0]), issue(events[20]), issue(events[40])
    start_merge(rt, a, [b], actor="ops", chunk=3)
    rt.enqueue("groups.merge", target_id=a, source_ids=[b], chunk=3)  # a duplicate, delivered concurrently
    wait_for(lambda: show_issue(rt.db, b)["id"] == a and show_issue(rt.db, a)["events_stored"] == 40
             and b not in {r["id"] for r in list_issues(rt.db)} and len(list_issues(rt.db)) == 3, 120, "merge done")
    assert {r["id"]: r["count"] for r in list_issues(rt.db)} == {a: 40, c: 20, issue(events[60]): 10}

    set_rules(rt.db, 1, "type:ConnectionError -> net\n", actor="ops")
    run = start_regroup(rt, 1, actor="ops", chunk=7)
    rt.enqueue("groups.regroup", run_id=run["run_id"], after_id=0, chunk=7)  # a duplicate of the first chunk
    wait_for(lambda: regroup_status(rt, run["run_id"])["status"] == "done", 180, "regroup done")
    summary = regroup_status(rt, run["run_id"])
    assert (summary["events_read"], summary["events_moved"], summary["issues_created"], summary["merged_away"]) == (70, 60, 1, 2)
    rows = list_issues(rt.db)
    assert sorted(r["count"] for r in rows) == [10, 60]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 70
