"""Cron monitors: check-ins over HTTP (simple route and envelope item) and monitors.check opening
issues for missed and failed runs, on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import orjson
from sqlalchemy import select
from starlette.testclient import TestClient

from eventpipe.ingest.checkins import checkin_routes, envelope_checkins, record_payload
from eventpipe.ingest.server import create_app
from eventpipe.metadata.models import Activity, CheckIn, CronMonitor, DigestRecord, Issue
from eventpipe.metadata.queries import ensure_project
from eventpipe.notify.monitors import add_monitor, record_checkin
from eventpipe.notify.rules import add_rule
from eventpipe.pipeline.monitors import slots_between
from eventpipe.tasks.monitors import check
from tests.tasks.notify_helpers import drain_digests


def app_for(rt):
    app = create_app(rt)
    app.router.routes.extend(checkin_routes(rt))  # what the ingest app mounts
    return TestClient(app)


def test_checkin_route_authenticates_and_records(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    key = ensure_project(rt.db, 1, "api").ingest_key
    add_monitor(rt.db, 1, "Nightly Backup", "0 3 * * *")
    client = app_for(rt)
    url = "/api/1/cron/nightly-backup/"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"X-Sentry-Auth": "Sentry sentry_key=" + "0" * 32}).status_code == 403
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={key}"}
    r = client.post(url, headers=auth, json={"status": "in_progress", "check_in_id": "abc"})
    assert r.status_code == 202 and r.json()["status"] == "in_progress"
    assert client.post(url, headers=auth, json={"status": "ok", "check_in_id": "abc", "duration": 1.5}).status_code == 202
    assert client.post(url + "?status=error", headers=auth).json()["status"] == "error"
    r = client.post("/api/1/cron/nope/", headers=auth)
    assert r.status_code == 404 and "monitors add" in r.json()["detail"]
    assert client.post(url, headers=auth, json={"status": "meh"}).status_code == 400
    with rt.db.session() as s:
        rows = sorted((c.checkin_id, c.status, c.duration_ms) for c in s.scalars(select(CheckIn)))
    assert ("abc", "ok", 1500) in rows and len(rows) == 2  # in_progress then ok: one check-in


def test_envelope_check_in_items(make_runtime):
    rt = make_runtime()
    ensure_project(rt.db, 1, "api")
    add_monitor(rt.db, 1, "sync", "*/5 * * * *")
    payload = orjson.dumps({"check_in_id": "c1", "monitor_slug": "sync", "status": "ok", "duration": 2})
    raw = b'{"event_id":"x"}\n' + orjson.dumps({"type": "check_in", "length": len(payload)}) + b"\n" + payload + b"\n"
    raw += b'{"type":"event"}\n{"message":"hi"}\n'
    items = envelope_checkins(raw)
    assert items == [{"check_in_id": "c1", "monitor_slug": "sync", "status": "ok", "duration": 2}]
    assert record_payload(rt, 1, None, items[0])["status"] == "ok"


def test_missed_and_failed_checkins_open_issues_and_notify(make_runtime, db_url, smtp_server):
    rt = make_runtime(database_url=db_url, smtp_url=smtp_server.url, digest_delay_seconds=1, digest_max_delay_seconds=2)
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=["ops@example.com"])
    m = add_monitor(rt.db, 1, "sync", "*/2 * * * *", margin_minutes=1)
    with rt.db.session() as s:
        start = s.scalar(select(CronMonitor.checked_until))
    until = start + timedelta(minutes=10)
    slots = slots_between(m["schedule"], start - timedelta(minutes=1), until - timedelta(minutes=1))
    assert len(slots) >= 4
    for slot in slots[:-2]:
        record_checkin(rt.db, 1, "sync", "ok", received_at=slot + timedelta(seconds=20))
    record_checkin(rt.db, 1, "sync", "error", received_at=slots[-2] + timedelta(seconds=20))  # the last slot: nothing

    opened = check(rt, now=until.isoformat())
    assert sorted(o["reason"] for o in opened) == ["error", "missed"]
    assert check(rt, now=until.isoformat()) == []  # judged once
    with rt.db.session() as s:
        issues = list(s.scalars(select(Issue)))
        kinds = sorted(k for (k,) in s.execute(select(Activity.kind)))
    assert len(issues) == 2 and all(i.status == "unresolved" and i.culprit == "monitor:sync" for i in issues)
    assert kinds == ["first_seen", "first_seen"]

    # a later failure reopens the same issue; everything reaches the project's rule by email
    record_checkin(rt.db, 1, "sync", "error", received_at=until + timedelta(seconds=30))
    later_now = until + timedelta(seconds=50)
    for slot in slots_between(m["schedule"], until - timedelta(minutes=1), later_now - timedelta(minutes=1)):
        record_checkin(rt.db, 1, "sync", "ok", received_at=slot)  # a slot due in this stretch ran fine
    later = check(rt, now=later_now.isoformat())
    assert [o["reason"] for o in later] == ["error"]
    rt.broker.run_until_idle()
    drain_digests(rt)
    with rt.db.session() as s:
        assert s.scalar(select(Issue.times_seen).where(Issue.title.like("%reported a failure%"))) == 2
        assert len(list(s.scalars(select(DigestRecord)))) == 3
    bodies = "".join(msg.get_payload(decode=True).decode() for msg in smtp_server.snapshot())
    assert "Cron monitor 'sync' missed a check-in" in bodies and "reported a failure" in bodies
