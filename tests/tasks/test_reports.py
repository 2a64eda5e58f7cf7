"""Weekly reports from rollups, emailed over real SMTP once per recipient and period."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from eventpipe.ingest.submit import submit_many
from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import Issue, NotificationSend
from eventpipe.metadata.queries import ensure_project
from eventpipe.notify.rules import add_rule
from eventpipe.tasks.reports import prepare_project, prepare_weekly
from eventpipe.tasks.rollups import daily
from tests.tasks.notify_helpers import crash


def test_weekly_report_email(make_runtime, db_url, smtp_server):
    rt = make_runtime(database_url=db_url, smtp_url=smtp_server.url)
    ensure_project(rt.db, 1, "api")
    ensure_project(rt.db, 2, "quiet")  # no recipients: no report
    add_rule(rt.db, 1, "regression", emails=["lead@example.com", "dev@example.com"])
    submit_many(rt, 1, [crash("KeyError", i) for i in range(12)] + [crash("ValueError", i) for i in range(5)])
    rt.broker.run_until_idle()
    daily(rt, lookback_hours=48)
    with rt.db.session() as s:
        s.execute(update(Issue).where(Issue.title.like("ValueError%")).values(status="resolved", resolved_at=utcnow()))

    end = (utcnow() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert prepare_weekly(rt, end=end.isoformat()) == 1
    rt.broker.run_until_idle()
    msgs = smtp_server.snapshot()
    assert sorted(str(m["To"]) for m in msgs) == ["dev@example.com", "lead@example.com"]
    body = msgs[0].get_payload(decode=True).decode()
    assert "17 events" in str(msgs[0]["Subject"]) and "Events: 17" in body
    assert "New issues: 2" in body and "Resolved issues: 1" in body
    top = body.split("Top issues:")[1]
    assert top.index("KeyError") < top.index("ValueError") and "(12 events)" in top

    # the same period again: recorded once per recipient, nothing re-sent
    assert prepare_project(rt, project_id=1, end=end.isoformat()) == 0
    rt.broker.run_until_idle()
    assert len(smtp_server.snapshot()) == 2
    with rt.db.session() as s:
        assert sorted(r.status for r in s.scalars(select(NotificationSend))) == ["sent", "sent"]
