"""Issue lifecycle functions against SQLite and Postgres: list/show with pending counts, status
changes with activity, snoozes that lapse by time or by count."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.issues import (
    InvalidIssueAction,
    IssueNotFound,
    clear_expired_snoozes,
    list_issues,
    set_status,
    show_issue,
)
from eventpipe.metadata.queries import ensure_project
from eventpipe.tasks.buffers import flush_counters
from tests.support.events import crash, ingest, issue_of


def test_counts_include_pending_increments_and_show_has_hashes_and_latest_event(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    first = [crash() for _ in range(4)]
    ingest(rt, 1, first)
    flush_counters(rt)
    later = [crash() for _ in range(3)] + [crash(function="edit")]
    ingest(rt, 1, later)  # not flushed: these are pending increments

    rows = list_issues(rt.db, project_id=1)
    assert [r["count"] for r in rows] == [7, 1]
    issue_id = issue_of(rt, first[0]["event_id"])
    shown = show_issue(rt.db, issue_id, rt.store)
    assert shown["count"] == 7 and shown["events_stored"] == 7
    assert len(shown["hashes"]) == 1 and shown["hashes"][0] == shown["fingerprint_hash"]
    latest = shown["latest_event"]
    assert latest["event_id"] in {e["event_id"] for e in first + later}
    assert latest["body"]["event_id"] == latest["event_id"]  # read from the KV store
    with pytest.raises(IssueNotFound, match="issues list"):
        show_issue(rt.db, 999_999)


def test_status_changes_write_activity_with_the_actor(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash(), crash(function="edit")]
    ingest(rt, 1, events)
    a, b = issue_of(rt, events[0]["event_id"]), issue_of(rt, events[1]["event_id"])

    out = set_status(rt.db, [a, b], "resolved", actor="alice")
    assert [(r["id"], r["status"], r["changed"]) for r in out] == [(a, "resolved", True), (b, "resolved", True)]
    again = set_status(rt.db, [a], "resolved", actor="alice")
    assert again[0]["changed"] is False  # no second activity
    set_status(rt.db, [a], "unresolved", actor="bob")
    shown = show_issue(rt.db, a)
    assert shown["status"] == "unresolved" and shown["resolved_at"] is None
    assert [(x["kind"], x["actor"]) for x in shown["activity"] if x["kind"] != "first_seen"] == [("unresolved", "bob"), ("resolved", "alice")]
    assert list_issues(rt.db, project_id=1, status="resolved")[0]["id"] == b

    with pytest.raises(InvalidIssueAction, match="only apply to `issues ignore`"):
        set_status(rt.db, [a], "resolved", actor="x", count=3)
    with pytest.raises(InvalidIssueAction, match="in the past"):
        set_status(rt.db, [a], "ignored", actor="x", until=utcnow() - timedelta(minutes=1))
    with pytest.raises(IssueNotFound):
        set_status(rt.db, [a, 424242], "resolved", actor="x")
    assert show_issue(rt.db, a)["status"] == "unresolved"  # nothing changed when one id is bad


def test_snoozes_lapse_by_time_and_by_count(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash(), crash(function="edit")]
    ingest(rt, 1, events)
    by_time, by_count = issue_of(rt, events[0]["event_id"]), issue_of(rt, events[1]["event_id"])
    now = utcnow()
    set_status(rt.db, [by_time], "ignored", actor="alice", until=now + timedelta(hours=1))
    set_status(rt.db, [by_count], "ignored", actor="alice", count=2)
    assert show_issue(rt.db, by_count)["snooze_until_count"] == 3

    assert clear_expired_snoozes(rt.db, now=now) == []
    ingest(rt, 1, [crash(function="edit")])  # one more: still snoozed (needs two)
    assert clear_expired_snoozes(rt.db, now=now) == []
    ingest(rt, 1, [crash(function="edit")])  # pending increments count, no flush needed
    assert clear_expired_snoozes(rt.db, now=now) == [by_count]
    assert clear_expired_snoozes(rt.db, now=now + timedelta(hours=2)) == [by_time]
    for issue_id in (by_time, by_count):
        shown = show_issue(rt.db, issue_id)
        assert shown["status"] == "unresolved" and shown["snooze_until"] is None
        assert shown["activity"][0]["kind"] == "unignored" and shown["activity"][0]["actor"] == "system"
