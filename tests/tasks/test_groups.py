"""groups.* tasks on the embedded broker against SQLite and Postgres: each test drives the real
pipeline, starts the task as the CLI does, runs the workers to idle and checks the stored rows."""

from __future__ import annotations

import time

from sqlalchemy import func, select, update

from eventpipe.metadata.issues import list_issues, set_status, show_issue
from eventpipe.metadata.grouping_rules import set_rules
from eventpipe.metadata.models import Event, Issue, Project, Rollup, ScheduledDeletion
from eventpipe.metadata.queries import ensure_project
from eventpipe.pipeline.keys import body_key
from eventpipe.tasks.buffers import flush_counters
from eventpipe.tasks.groups import (
    auto_resolve_project,
    clear_expired_snoozes,
    schedule_auto_resolve,
    start_delete,
    start_merge,
    start_unmerge,
)
from eventpipe.tasks.regroup import regroup_status, start_regroup
from eventpipe.tasks.rollups import hourly
from tests.support.events import crash, events_per_issue, hashes, ingest, issue_ids, issue_of


def _rollup_total(rt, issue_id, resolution="hour"):
    with rt.db.session() as s:
        return s.scalar(select(func.coalesce(func.sum(Rollup.count), 0)).where(Rollup.issue_id == issue_id, Rollup.resolution == resolution))


def test_merge_moves_events_hashes_counts_and_rollups_and_old_ids_redirect(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    a_events = [crash(function="a") for _ in range(5)]
    b_events = [crash(function="b") for _ in range(3)]
    ingest(rt, 1, a_events + b_events)
    flush_counters(rt)  # a and b: flushed counts
    c_events = [crash(function="c") for _ in range(2)]
    ingest(rt, 1, c_events)  # c: pending increments only
    hourly(rt, lookback_hours=1)
    a, b, c = (issue_of(rt, e[0]["event_id"]) for e in (a_events, b_events, c_events))
    all_hashes = hashes(rt, a) | hashes(rt, b) | hashes(rt, c)

    out = start_merge(rt, a, [b, c, a], actor="alice", chunk=2)  # chunk 2: several messages
    assert out == {"target": a, "merged": sorted([b, c])}
    rt.broker.run_until_idle()

    assert issue_ids(rt, 1) == {a}
    assert events_per_issue(rt, 1) == {a: 10}
    assert hashes(rt, a) == all_hashes
    assert [r["count"] for r in list_issues(rt.db, project_id=1)] == [10]
    flush_counters(rt)
    with rt.db.session() as s:
        assert s.get(Issue, a).times_seen == 10
    assert _rollup_total(rt, a) == 10 and _rollup_total(rt, b) == 0
    shown = show_issue(rt.db, b)
    assert shown["id"] == a and shown["redirected_from"] == b
    assert sorted(shown["merged_ids"]) == sorted([b, c])
    assert any(x["kind"] == "merge" and x["actor"] == "alice" for x in shown["activity"])
    # a redelivered merge message changes nothing
    rt.enqueue("groups.merge", target_id=a, source_ids=[b, c], chunk=2)
    rt.broker.run_until_idle()
    assert events_per_issue(rt, 1) == {a: 10}

    # new events of a merged-away hash land in the target (save looks hashes up in group_hashes)
    late = crash(function="b")
    ingest(rt, 1, [late])
    assert issue_of(rt, late["event_id"]) == a


def test_unmerge_splits_hashes_off_with_exact_counts(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    a_events, b_events = [crash(function="a") for _ in range(4)], [crash(function="b") for _ in range(3)]
    ingest(rt, 1, a_events + b_events)
    a, b = issue_of(rt, a_events[0]["event_id"]), issue_of(rt, b_events[0]["event_id"])
    b_hash = next(iter(hashes(rt, b)))
    start_merge(rt, a, [b], actor="alice")
    rt.broker.run_until_idle()
    flush_counters(rt)

    out = start_unmerge(rt, b, [b_hash], actor="bob", chunk=2)  # the old id redirects to a
    assert out["issue"] == a
    new = out["new_issue"]
    rt.broker.run_until_idle()
    assert events_per_issue(rt, 1) == {a: 4, new: 3}
    counts = {r["id"]: r["count"] for r in list_issues(rt.db, project_id=1)}
    assert counts == {a: 4, new: 3}
    assert hashes(rt, new) == {b_hash} and b_hash not in hashes(rt, a)
    assert show_issue(rt.db, new)["title"].startswith("KeyError")
    late = crash(function="b")
    ingest(rt, 1, [late])
    assert issue_of(rt, late["event_id"]) == new


def test_delete_removes_rows_then_bodies(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    doomed, kept = [crash(function="a") for _ in range(5)], [crash(function="b") for _ in range(2)]
    ingest(rt, 1, doomed + kept)
    a, b = issue_of(rt, doomed[0]["event_id"]), issue_of(rt, kept[0]["event_id"])

    start_delete(rt, [a], actor="alice", chunk=2)
    assert [r["id"] for r in list_issues(rt.db, project_id=1)] == [b]  # hidden at once
    rt.broker.run_until_idle()
    assert issue_ids(rt, 1) == {b}
    assert all(rt.store.get(body_key(1, e["event_id"])) is None for e in doomed)
    assert all(rt.store.get(body_key(1, e["event_id"])) is not None for e in kept)
    with rt.db.session() as s:
        assert s.scalar(select(ScheduledDeletion.done_at).where(ScheduledDeletion.object_id == a)) is not None
    # the same fingerprint afterwards starts a fresh issue
    again = crash(function="a")
    ingest(rt, 1, [again])
    assert issue_of(rt, again["event_id"]) not in (a, b)


def test_clear_expired_snoozes_task(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ev = crash()
    ingest(rt, 1, [ev])
    issue = issue_of(rt, ev["event_id"])
    set_status(rt.db, [issue], "ignored", actor="alice", count=1)
    assert clear_expired_snoozes(rt) == 0
    ingest(rt, 1, [crash()])
    rt.enqueue("groups.clear_expired_snoozes")
    rt.broker.run_until_idle()
    assert show_issue(rt.db, issue)["status"] == "unresolved"


def test_auto_resolve_after_resolve_age(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")  # no resolve_age: untouched
    old = crash(function="old", ts=time.time() - 30 * 3600)
    fresh = crash(function="fresh")
    ingest(rt, 1, [old, fresh])
    ingest(rt, 2, [crash(function="old", ts=time.time() - 30 * 3600)])
    flush_counters(rt)
    with rt.db.session() as s:
        s.execute(update(Project).where(Project.id == 1).values(resolve_age=24))
    assert schedule_auto_resolve(rt) == 1
    rt.broker.run_until_idle()
    by_id = {r["id"]: r["status"] for r in list_issues(rt.db)}
    assert by_id[issue_of(rt, old["event_id"])] == "resolved"
    assert by_id[issue_of(rt, fresh["event_id"])] == "unresolved"
    assert sorted(by_id.values()).count("resolved") == 1
    shown = show_issue(rt.db, issue_of(rt, old["event_id"]))
    assert shown["activity"][0]["actor"] == "system" and shown["activity"][0]["data"]["auto"] is True
    assert auto_resolve_project(rt, project_id=1) == 0  # idempotent


def test_regroup_applies_new_rules_to_stored_events(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    net = [crash("ConnectionError", f) for f in ("fetch", "send", "recv") for _ in range(3)]
    other = [crash("KeyError", "show") for _ in range(2)]
    ingest(rt, 1, net + other)
    flush_counters(rt)
    before = issue_ids(rt, 1)
    assert len(before) == 4
    keep = issue_of(rt, other[0]["event_id"])

    set_rules(rt.db, 1, "error.type:ConnectionError -> connection-errors\n", actor="alice")
    run = start_regroup(rt, 1, actor="alice", chunk=4)
    rt.broker.run_until_idle()
    summary = regroup_status(rt, run["run_id"])
    assert summary["status"] == "done"
    assert summary["events_read"] == 11 and summary["events_moved"] == 9
    assert summary["issues_created"] == 1 and summary["merged_away"] == 3
    after = issue_ids(rt, 1)
    assert len(after) == 2 and keep in after
    merged = issue_of(rt, net[0]["event_id"])
    assert events_per_issue(rt, 1) == {merged: 9, keep: 2}
    assert {r["id"]: r["count"] for r in list_issues(rt.db, project_id=1)} == {merged: 9, keep: 2}
    for old in before - after:
        assert show_issue(rt.db, old)["id"] == merged  # merged-away ids redirect
    # rules removed + regroup: the default grouping comes back, counts still exact
    set_rules(rt.db, 1, "", actor="alice")
    run = start_regroup(rt, 1, actor="alice", chunk=5)
    rt.broker.run_until_idle()
    summary = regroup_status(rt, run["run_id"])
    assert summary["events_moved"] == 9 and summary["merged_away"] == 1 and summary["issues_created"] == 3
    per_issue = sorted(events_per_issue(rt, 1).values())
    assert per_issue == [2, 3, 3, 3]
    assert sorted(r["count"] for r in list_issues(rt.db, project_id=1)) == per_issue
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.project_id == 1)) == 11


def test_new_events_follow_project_rules_at_once(make_runtime, db_url):
    """Needs events.process to group by ``grouping_hash(event, rules_for_projects(...)[pid])``."""
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    first = crash("ConnectionError", "fetch")
    ingest(rt, 1, [first])
    set_rules(rt.db, 1, "error.type:ConnectionError -> connection-errors\n", actor="alice")
    a, b = crash("ConnectionError", "send"), crash("ConnectionError", "recv")
    ingest(rt, 1, [a, b])
    assert issue_of(rt, a["event_id"]) == issue_of(rt, b["event_id"]) != issue_of(rt, first["event_id"])


def test_resume_stalled_resends_lost_regroup_and_merge_messages(make_runtime, db_url):
    from datetime import timedelta

    from eventpipe.metadata.db import utcnow
    from eventpipe.metadata.models import IssueRedirect, RegroupRun
    from eventpipe.tasks.regroup import resume_stalled

    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash("ConnectionError", f) for f in ("x", "y", "z") for _ in range(3)]
    ingest(rt, 1, events)
    x, y = issue_of(rt, events[0]["event_id"]), issue_of(rt, events[3]["event_id"])
    long_ago = utcnow() - timedelta(hours=1)

    start_merge(rt, x, [y], actor="alice", chunk=2)
    rt.broker.flush_all()  # the message is lost
    assert resume_stalled(rt) == {"regroups": 0, "merges": 0}  # not stale yet
    with rt.db.session() as s:
        s.execute(update(IssueRedirect).values(created_at=long_ago))
    assert resume_stalled(rt) == {"regroups": 0, "merges": 1}
    rt.broker.run_until_idle()
    assert len(issue_ids(rt, 1)) == 2 and events_per_issue(rt, 1)[x] == 6

    set_rules(rt.db, 1, "type:ConnectionError -> net", actor="alice")
    run = start_regroup(rt, 1, actor="alice", chunk=2)
    rt.broker.flush_all()
    with rt.db.session() as s:
        s.execute(update(RegroupRun).values(updated_at=long_ago))
    assert resume_stalled(rt) == {"regroups": 1, "merges": 0}
    rt.broker.run_until_idle()
    assert regroup_status(rt, run["run_id"])["status"] == "done"
    assert len(issue_ids(rt, 1)) == 1
    assert [r["count"] for r in list_issues(rt.db, project_id=1)] == [9]
