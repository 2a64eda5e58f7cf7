"""Alert rules -> digests -> real SMTP and signed webhooks, on SQLite and Postgres."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from eventpipe.ingest.submit import submit_many
from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import DeadLetter, Digest, DigestRecord, NotificationSend, RuleFireState
from eventpipe.metadata.queries import ensure_project
from eventpipe.notify.rules import add_rule
from eventpipe.tasks.notify import claim_throttle, deliver_digest, evaluate, schedule_digests, send_activity, spike_alert
from eventpipe.tasks.notify_send import send_email, send_webhook
from eventpipe.tasks.rollups import hourly
from tests.tasks.notify_helpers import SECRET, crash, drain_digests, hand_over, issues_in

FLOOD = int(os.environ.get("EVENTPIPE_TEST_FLOOD_EVENTS", "20000"))


def notify_runtime(make_runtime, db_url, box, **extra):
    settings = dict(
        database_url=db_url, smtp_url=box.url, webhook_secret=SECRET, email_from="alerts@eventpipe.test",
        digest_delay_seconds=1, digest_max_delay_seconds=4, min_backoff_ms=10, max_backoff_ms=50,
    )
    return make_runtime(**{**settings, **extra})


def sends(rt, **where):
    with rt.db.session() as s:
        q = select(NotificationSend)
        for k, v in where.items():
            q = q.where(getattr(NotificationSend, k) == v)
        return list(s.scalars(q))


def test_first_seen_rule_sends_one_digest_and_signed_webhooks(make_runtime, db_url, smtp_server, webhook_receiver):
    rt = notify_runtime(make_runtime, db_url, smtp_server)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=["dev@example.com", "ops@example.com"], webhooks=[webhook_receiver.url])
    events = [crash(kind, i) for kind in ("KeyError", "ValueError", "OSError") for i in range(10)]
    assert len(submit_many(rt, 1, events).accepted) == 30
    rt.broker.run_until_idle()
    hand_over(rt)
    drain_digests(rt)

    msgs = smtp_server.snapshot()
    by_rcpt = Counter(str(m["To"]) for m in msgs)
    assert set(by_rcpt) == {"dev@example.com", "ops@example.com"}
    for rcpt in by_rcpt:  # every issue listed exactly once per recipient, over the digests it took
        listed = [t for m in msgs if m["To"] == rcpt for t in issues_in(m)]
        assert len(listed) == len(set(listed)) == 3
    assert all(m["From"] == "alerts@eventpipe.test" for m in msgs)
    assert len(set(smtp_server.keys())) == len(msgs)  # no email twice

    assert webhook_receiver.bad_signatures == 0
    bodies = [r["body"] for r in webhook_receiver.received]
    assert sorted(b["kind"] for b in bodies) == ["first_seen"] * 3
    assert len({b["issue"]["id"] for b in bodies}) == 3 and all(b["issue"]["count"] >= 1 for b in bodies)

    # Redelivery of every step changes nothing: the throttle, unique records and claimed sends.
    before = (len(msgs), len(webhook_receiver.received))
    hand_over(rt)
    for row in sends(rt):
        (send_email if row.channel == "email" else send_webhook)(rt, send_id=row.id)
    deliver_digest(rt, project_id=1)
    rt.broker.run_until_idle()
    assert (len(smtp_server.snapshot()), len(webhook_receiver.received)) == before
    assert {r.status for r in sends(rt)} == {"sent"}


def test_throttle_compare_and_set_fires_once_under_concurrency(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    now = utcnow()
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        with rt.db.session() as s:
            wins.append(claim_throttle(s, 7, 42, now, 30))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    with rt.db.session() as s:  # after the window it fires again, once
        assert not claim_throttle(s, 7, 42, now + timedelta(minutes=29), 30)
        assert claim_throttle(s, 7, 42, now + timedelta(minutes=31), 30)
        assert s.get(RuleFireState, (7, 42)).fired == 2
        assert claim_throttle(s, 7, 43, now, 0) and claim_throttle(s, 7, 43, now, 0)  # 0: no throttle


@pytest.mark.timeout(3600)  # 20,000 events through the whole pipeline on a shared machine
def test_every_event_flood_is_one_email_per_window(make_runtime, db_url, smtp_server, webhook_receiver):
    """The flood: FLOOD events of 3 issues through the real pipeline with a first-seen rule (email
    and webhook) and an every-event rule (email) -> a handful of emails, each issue once per
    digest, 3 webhooks, no duplicates."""
    rt = notify_runtime(make_runtime, db_url, smtp_server)
    # the full flood on SQLite; Postgres runs the same path with a tenth (CI time, same assertions)
    flood = FLOOD if db_url.startswith("sqlite") else max(1, FLOOD // 10)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=["dev@example.com"], webhooks=[webhook_receiver.url])
    add_rule(rt.db, 1, "every_event", emails=["oncall@example.com"], throttle_minutes=0)
    kinds = ("KeyError", "ValueError", "OSError")
    for start in range(0, flood, 2000):
        batch = [crash(kinds[i % 3], i) for i in range(start, min(flood, start + 2000))]
        assert len(submit_many(rt, 1, batch).accepted) == len(batch)
        rt.broker.run_until_idle()
        hand_over(rt)
    drain_digests(rt, timeout=600)

    msgs = smtp_server.snapshot()
    with rt.db.session() as s:
        digests = s.scalar(select(func.count()).select_from(Digest))
        records = s.scalar(select(func.count()).select_from(DigestRecord))
    keys = smtp_server.keys()
    assert len(keys) == len(set(keys)), "an email was sent twice"
    for rcpt in ("dev@example.com", "oncall@example.com"):
        mine = [m for m in msgs if m["To"] == rcpt]
        assert 1 <= len(mine) <= digests
        for m in mine:
            titles = issues_in(m)
            assert len(titles) == len(set(titles)) <= 3  # each issue once per digest
    assert len({t for m in msgs if m["To"] == "dev@example.com" for t in issues_in(m)}) == 3
    assert records == flood + 3  # every event notified once (every_event) + 3 first-seen
    assert len(webhook_receiver.received) == 3 and len(set(webhook_receiver.deliveries())) == 3
    print(f"\nflood: events={flood} emails={len(msgs)} digests={digests} webhooks={len(webhook_receiver.received)} "
          f"duplicates={len(keys) - len(set(keys))}")


def test_webhook_retried_with_backoff_then_dead_lettered(make_runtime, smtp_server, webhook_receiver, tmp_path):
    rt = notify_runtime(make_runtime, f"sqlite:///{tmp_path / 'm.sqlite3'}", smtp_server, webhook_max_attempts=3)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", webhooks=[webhook_receiver.url])
    webhook_receiver.fail_first = 2  # two 500s, then accepted
    item = {"project_id": 1, "issue_id": 1, "event_id": "a" * 32, "kinds": ["first_seen"], "level": "error"}
    assert evaluate(rt, [item]) == 1
    rt.broker.run_until_idle()
    assert len(webhook_receiver.received) == 1 and webhook_receiver.requests == 3
    assert [r.status for r in sends(rt)] == ["sent"]

    webhook_receiver.always_status = 503  # never accepted: dead after 3 attempts, with the reason
    evaluate(rt, [{**item, "issue_id": 2, "event_id": "b" * 32}])
    rt.broker.run_until_idle()
    dead = sends(rt, status="dead")
    assert len(dead) == 1 and dead[0].attempts == 3 and "HTTP 503" in dead[0].last_error
    with rt.db.session() as s:
        letters = list(s.scalars(select(DeadLetter).where(DeadLetter.task == "notify.send_webhook")))
    assert len(letters) == 1 and "HTTP 503" in letters[0].reason


def test_activity_and_spike_go_through_the_digest(make_runtime, db_url, smtp_server):
    rt = notify_runtime(make_runtime, db_url, smtp_server)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "spike:20/60", emails=["ops@example.com"])
    submit_many(rt, 1, [crash("KeyError", i) for i in range(25)])
    rt.broker.run_until_idle()
    hourly(rt, lookback_hours=2)
    assert spike_alert(rt) == 1
    assert spike_alert(rt) == 0  # throttled
    with rt.db.session() as s:
        issue_id = s.scalar(select(DigestRecord.issue_id))  # 0: project level
    assert send_activity(rt, project_id=1, issue_id=issue_id or 0, kind="resolved", key="resolve:1") == 1
    send_activity(rt, project_id=1, issue_id=issue_id or 0, kind="resolved", key="resolve:1")  # repeat: no-op
    rt.broker.run_until_idle()
    drain_digests(rt)
    bodies = [m.get_payload(decode=True).decode() for m in smtp_server.snapshot()]
    assert any("Event volume spike" in b and "25 events" in b for b in bodies)
    with rt.db.session() as s:
        kinds = sorted(k for (k,) in s.execute(select(DigestRecord.kind)))
    assert kinds == ["resolved", "spike"]


def test_smtp_down_is_retried_not_lost(make_runtime, smtp_server, tmp_path):
    from eventpipe.testing.ports import free_port

    rt = notify_runtime(make_runtime, f"sqlite:///{tmp_path / 'm.sqlite3'}", smtp_server, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=["dev@example.com"])
    evaluate(rt, [{"project_id": 1, "issue_id": 1, "event_id": "c" * 32, "kinds": ["first_seen"], "level": "error"}])
    deliver_digest(rt, project_id=1)
    row = sends(rt, channel="email")[0]
    try:
        send_email(rt, send_id=row.id)
    except Exception as exc:  # noqa: BLE001
        assert "cannot connect" in str(exc)
    row = sends(rt, channel="email")[0]
    assert row.status == "pending" and row.attempts == 1 and "cannot connect" in row.last_error
    rt.settings.smtp_url = smtp_server.url  # the server is back
    assert send_email(rt, send_id=row.id) == "sent"
    assert send_email(rt, send_id=row.id) == "skipped"
    assert len(smtp_server.snapshot()) == 1


def test_schedule_digests_resends_what_a_crash_left_pending(make_runtime, smtp_server, tmp_path):
    """A process that recorded a digest email and died before its message was processed (the
    embedded broker's messages die with it): the periodic job finds the pending row and sends it."""
    db = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    rt = notify_runtime(make_runtime, db, smtp_server, digest_delay_seconds=60)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=["dev@example.com"])
    evaluate(rt, [{"project_id": 1, "issue_id": 1, "event_id": "d" * 32, "kinds": ["first_seen"], "level": "error"}])
    assert deliver_digest(rt, project_id=1) == 1  # the email row is recorded; its message is lost below
    restarted = notify_runtime(make_runtime, db, smtp_server, digest_delay_seconds=60)  # a fresh broker
    with restarted.db.session() as s:
        s.execute(update(NotificationSend).values(created_at=utcnow() - timedelta(minutes=1)))
    assert schedule_digests(restarted) == {"due": 0, "resent": 1}
    restarted.broker.run_until_idle()
    assert [str(m["To"]) for m in smtp_server.snapshot()] == ["dev@example.com"]
    assert schedule_digests(restarted) == {"due": 0, "resent": 0}
