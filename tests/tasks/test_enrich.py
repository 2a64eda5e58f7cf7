"""events.record_user, events.index_tags and cleanup.enrichment_orphans through the real pipeline
(ingest -> process -> save -> enrichment) on SQLite and Postgres."""

from __future__ import annotations

from sqlalchemy import func, select

from eventpipe.metadata.models import EventIndexed, Issue, IssueTagValue, IssueUser
from eventpipe.metadata.queries import ensure_project
from eventpipe.tasks.enrich import (
    enrichment_orphans,
    index_tags,
    record_user,
    tag_values,
    users_per_issue,
)
from tests.support.events import crash, ingest, issue_of


def test_users_and_tags_are_recorded_per_issue_once(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [
        crash(user={"id": "u1"}, tags={"browser": "firefox", "env": "prod"}),
        crash(user={"id": "u1"}, tags={"browser": "chrome", "env": "prod"}),
        crash(user={"email": "b@example.com"}, tags=[["env", "staging"]]),
        crash(),  # no user, no tags: not handed over
    ]
    ingest(rt, 1, events)
    issue = issue_of(rt, events[0]["event_id"])
    assert users_per_issue(rt.db, [issue]) == {issue: 2}
    tags = tag_values(rt.db, issue)
    assert tags["env"] == [{"value": "prod", "count": 2}, {"value": "staging", "count": 1}]
    assert sorted(v["value"] for v in tags["browser"]) == ["chrome", "firefox"]
    with rt.db.session() as s:  # only hashes are stored, never the address
        assert all(len(h) == 40 and "@" not in h for h in s.scalars(select(IssueUser.user_hash)))

    # A redelivered batch (same items) counts nothing twice.
    items = [{"project_id": 1, "event_id": events[0]["event_id"], "issue_id": issue, "timestamp": events[0]["timestamp"],
              "tags": [["env", "prod"]], "user_hash": "a" * 40}]
    assert index_tags(rt.context, items) == 0
    record_user(rt.context, items)
    record_user(rt.context, items)
    assert tag_values(rt.db, issue)["env"][0] == {"value": "prod", "count": 2}
    assert users_per_issue(rt.db, [issue]) == {issue: 3}


def test_orphans_of_deleted_issues_are_dropped(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    keep, gone = crash(user={"id": "u1"}, tags={"env": "prod"}), crash("ValueError", "other", user={"id": "u2"}, tags={"env": "dev"})
    ingest(rt, 1, [keep, gone])
    doomed = issue_of(rt, gone["event_id"])
    rt.enqueue("groups.delete", issue_id=doomed)
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.get(Issue, doomed) is None
    assert enrichment_orphans(rt.context) == {"users": 1, "tag_values": 1, "indexed": 1}
    assert enrichment_orphans(rt.context) == {"users": 0, "tag_values": 0, "indexed": 0}
    with rt.db.session() as s:
        left = [s.scalar(select(func.count()).select_from(m)) for m in (IssueUser, IssueTagValue, EventIndexed)]
    assert left == [1, 1, 1]


def test_tag_values_past_retention_expire(make_runtime, db_url):
    import time

    from eventpipe.metadata.models import Project

    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    old, new = crash(ts=time.time() - 10 * 86400, tags={"env": "old"}), crash(tags={"env": "new"})
    ingest(rt, 1, [old, new])
    with rt.db.session() as s:
        s.get(Project, 1).retention_days = 5
    rt.enqueue("cleanup.tag_values_expire")
    rt.broker.run_until_idle()
    assert tag_values(rt.db, issue_of(rt, new["event_id"])) == {"env": [{"value": "new", "count": 1}]}


def test_deleting_a_project_removes_its_users_tags_and_stats(make_runtime, db_url):
    from eventpipe.metadata.models import PlatformStat
    from eventpipe.tasks.cleanup import start_delete_project

    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "web")
    ingest(rt, 1, [crash(user={"id": "u1"}, tags={"env": "prod"})])
    ingest(rt, 2, [crash(user={"id": "u1"}, tags={"env": "prod"})])
    rt.enqueue("stats.collect_platforms")
    rt.broker.run_until_idle()
    start_delete_project(rt, 1, actor="alice", chunk=10)
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        left = {m.__tablename__: sorted(set(s.scalars(select(m.project_id)))) for m in (IssueUser, IssueTagValue, EventIndexed, PlatformStat)}
    assert left == {"issue_users": [2], "issue_tag_values": [2], "event_indexed": [2], "platform_stats": [2]}
