"""events.reprocess and events.backfill_enrichment: chunked, self re-enqueuing walks over stored
events, on SQLite and Postgres."""

from __future__ import annotations

import orjson
from sqlalchemy import delete, func, select

from eventpipe.metadata.models import (
    Event,
    EventIndexed,
    Issue,
    IssueTagValue,
    IssueUser,
)
from eventpipe.metadata.queries import ensure_project
from eventpipe.pipeline.keys import body_key
from eventpipe.tasks.enrich import tag_values, users_per_issue
from tests.support.events import crash, events_per_issue, ingest, issue_of


def test_reprocess_rewrites_stored_bodies_in_chunks(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash() for _ in range(5)]
    ingest(rt, 1, events)
    before = events_per_issue(rt, 1)
    # Bodies stored before a scrubbing rule existed: a secret left in them.
    for e in events:
        rt.store.put(body_key(1, e["event_id"]), orjson.dumps({**e, "extra": {"db_password": "hunter2"}}))
    rt.enqueue("events.reprocess", project_id=1, chunk=2)  # 3 chunks: 2 + 2 + 1
    rt.broker.run_until_idle()
    for e in events:
        body = orjson.loads(rt.store.get(body_key(1, e["event_id"])))
        assert body["extra"]["db_password"] != "hunter2"
    assert events_per_issue(rt, 1) == before  # rows and counts untouched
    rt.enqueue("buffers.flush")
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.scalar(select(Issue.times_seen)) == 5


def test_backfill_enrichment_reads_bodies_of_old_events(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash(user={"id": f"u{n % 3}"}, tags={"env": "prod"}) for n in range(7)]
    ingest(rt, 1, events)
    with rt.db.session() as s:  # as if saved before enrichment existed
        for model in (IssueUser, IssueTagValue, EventIndexed):
            s.execute(delete(model))
    issue = issue_of(rt, events[0]["event_id"])
    for _ in range(2):  # a second run (or a redelivery) counts nothing twice
        rt.enqueue("events.backfill_enrichment", project_id=1, chunk=3)
        rt.broker.run_until_idle()
        assert users_per_issue(rt.db, [issue]) == {issue: 3}
        assert tag_values(rt.db, issue) == {"env": [{"value": "prod", "count": 7}]}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 7
