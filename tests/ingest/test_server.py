"""The HTTP ingest endpoint: authentication on every request, limits, both protocols."""

from __future__ import annotations

import gzip
import uuid

import orjson
from starlette.testclient import TestClient

from eventpipe.ingest.server import create_app
from eventpipe.metadata.queries import ensure_project, totals


def client(make_runtime, **kw):
    rt = make_runtime(max_event_bytes=4096)
    project = ensure_project(rt.db, 7, "web")
    return rt, project.ingest_key, TestClient(create_app(rt, **kw))


def auth(key: str) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}, sentry_client=test/1"}


def test_every_request_is_authenticated(make_runtime):
    rt, key, c = client(make_runtime)
    event = {"message": "hello"}
    assert c.post("/api/7/store/", json=event).status_code == 401
    assert c.post("/api/7/store/", json=event, headers=auth("0" * 32)).status_code == 403
    assert c.post("/api/8/store/", json=event, headers=auth(key)).status_code == 403  # key of another project
    ok = c.post(f"/api/7/store/?sentry_key={key}", json=event)
    assert ok.status_code == 200 and len(ok.json()["id"]) == 32
    rt.broker.run_until_idle()
    assert totals(rt.db)["events_stored"] == 1


def test_store_envelope_gzip_and_dedupe(make_runtime):
    rt, key, c = client(make_runtime)
    eid = uuid.uuid4().hex
    body = gzip.compress(orjson.dumps({"event_id": eid, "message": "zipped"}))
    r = c.post("/api/7/store/", content=body, headers={**auth(key), "Content-Encoding": "gzip"})
    assert r.json() == {"id": eid}
    env = b'{"event_id":"%s"}\n{"type":"event"}\n{"event_id":"%s","message":"again"}\n' % (eid.encode(), eid.encode())
    assert c.post("/api/7/envelope/", content=env, headers=auth(key)).json() == {"id": eid}
    rt.broker.run_until_idle()
    assert totals(rt.db)["events_stored"] == 1


def test_bad_input_and_size_limits(make_runtime):
    rt, key, c = client(make_runtime)
    r = c.post("/api/7/store/", content=b"{nope", headers=auth(key))
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    r = c.post("/api/7/store/", json={"message": "x", "timestamp": "soon"}, headers=auth(key))
    assert r.status_code == 400 and r.json()["detail"].startswith("timestamp:")
    r = c.post("/api/7/store/", content=b"x" * 5000, headers=auth(key))
    assert r.status_code == 413
    bomb = gzip.compress(b'{"message":"' + b"a" * 100_000 + b'"}')
    r = c.post("/api/7/store/", content=bomb, headers={**auth(key), "Content-Encoding": "gzip"})
    assert r.status_code == 413


def test_rate_limit_answers_429_with_retry_after(make_runtime):
    rt, key, c = client(make_runtime, rate_per_project=1.0, burst=2.0)
    codes = [c.post("/api/7/store/", json={"message": f"m{i}"}, headers=auth(key)).status_code for i in range(4)]
    assert codes[:2] == [200, 200] and codes[2] == 429
    r = c.post("/api/7/store/", json={"message": "later"}, headers=auth(key))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
