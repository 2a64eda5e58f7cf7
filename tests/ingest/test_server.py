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
    dsn = c.post("/api/7/store/", json=event, headers={"Authorization": f"DSN http://{key}@127.0.0.1:8000/7"})
    assert dsn.status_code == 200
    ok = c.post(f"/api/7/store/?sentry_key={key}", json=event)
    assert ok.status_code == 200 and len(ok.json()["id"]) == 32
    rt.broker.run_until_idle()
    assert totals(rt.db)["events_stored"] == 2


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
    r = c.post("/api/7/store/", json=[{"message": "x"}], headers=auth(key))
    assert r.status_code == 400 and r.json()["reason"] == "not_an_object"
    r = c.post("/api/7/store/", json={"message": "x", "timestamp": "soon"}, headers=auth(key))
    assert r.status_code == 200  # repaired, recorded in the event's errors
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
    assert r.headers["X-Sentry-Rate-Limits"].endswith("::project") and r.json()["reason"] == "rate_limited"


def test_every_content_encoding_and_legacy_bodies(make_runtime):
    import base64
    import zlib

    import brotli

    rt, key, c = client(make_runtime)
    body = orjson.dumps({"message": "compressed"})
    bodies = {
        "br": brotli.compress(body),
        "gzip": gzip.compress(body),
        "deflate": zlib.compress(body),
        "identity": body,
    }
    for encoding, data in bodies.items():
        r = c.post("/api/7/store/", content=data, headers={**auth(key), "Content-Encoding": encoding})
        assert r.status_code == 200, (encoding, r.text)
    raw_deflate = zlib.compressobj(wbits=-15)
    data = raw_deflate.compress(body) + raw_deflate.flush()
    assert c.post("/api/7/store/", content=data, headers={**auth(key), "Content-Encoding": "deflate"}).status_code == 200
    legacy = base64.b64encode(zlib.compress(body))  # raven's store body
    assert c.post("/api/7/store/", content=legacy, headers=auth(key)).status_code == 200
    env = b'{}\n{"type":"event"}\n' + body + b"\n"
    assert c.post("/api/7/envelope/", content=brotli.compress(env), headers={**auth(key), "Content-Encoding": "br"}).status_code == 200
    r = c.post("/api/7/store/", content=b"garbage", headers={**auth(key), "Content-Encoding": "br"})
    assert r.status_code == 400 and r.json()["reason"] == "undecodable_body"
    r = c.post("/api/7/store/", content=body, headers={**auth(key), "Content-Encoding": "zstd-ish"})
    assert r.status_code == 400 and "br, gzip, deflate" in r.json()["detail"]


def test_compression_bombs_are_413_for_every_encoding(make_runtime):
    import zlib

    import brotli

    rt, key, c = client(make_runtime)
    plain = b'{"message":"' + b"a" * 2_000_000 + b'"}'
    for encoding, data in {"br": brotli.compress(plain), "deflate": zlib.compress(plain), "gzip": gzip.compress(plain)}.items():
        assert len(data) < 4096
        r = c.post("/api/7/store/", content=data, headers={**auth(key), "Content-Encoding": encoding})
        assert r.status_code == 413 and r.json()["reason"] == "too_large", encoding
        r = c.post("/api/7/envelope/", content=data, headers={**auth(key), "Content-Encoding": encoding})
        assert r.status_code == 413


def test_envelope_semantics_ids_items_and_attachments(make_runtime):
    from eventpipe.ingest.stored import show_event

    rt, key, c = client(make_runtime)
    eid = uuid.uuid4().hex
    blob = bytes(range(256)) * 40  # 10 kB: bigger than the 4 kB event limit, within the attachment limit
    env = (
        b'{"event_id":"%s"}\n{"type":"event"}\n{"message":"with attachment"}\n' % eid.encode()
        + b'{"type":"attachment","length":%d,"filename":"../dump.bin"}\n' % len(blob) + blob + b"\n"
    )
    for _ in range(2):  # resending the same envelope stores the event once
        r = c.post("/api/7/envelope/", content=env, headers=auth(key))
        assert r.json() == {"id": eid}
    rt.broker.run_until_idle()
    assert totals(rt.db)["events_stored"] == 1
    shown = show_event(rt.store, 7, eid)
    assert shown["event"]["message"] == "with attachment"
    assert [(a["filename"], a["size"]) for a in shown["attachments"]] == [("../dump.bin", len(blob))]
    assert rt.store.get(shown["attachments"][0]["key"]) == blob
    truncated = b'{}\n{"type":"event","length":500}\n{"message":"x"}\n'
    r = c.post("/api/7/envelope/", content=truncated, headers=auth(key))
    assert r.status_code == 400 and r.json()["reason"] == "truncated_item" and "items[0]" in r.json()["detail"]
    for item in (b'{"type":"transaction"}\n{"type":"transaction","spans":[]}\n', b'{"type":"session"}\n{"sid":"x"}\n',
                 b'{"type":"client_report"}\n{}\n', b'{"type":"check_in"}\n{"monitor_slug":"m","status":"ok"}\n'):
        for path in ("/api/7/envelope/", "/api/7/store/"):
            r = c.post(path, content=b"{}\n" + item, headers=auth(key))
            assert r.status_code == 200, (path, item, r.text)
    for doc in ({"type": "transaction", "spans": []}, {"monitor_slug": "m", "status": "ok"}, {"discarded_events": []}):
        assert c.post("/api/7/store/", json=doc, headers=auth(key)).status_code == 200
    rt.broker.run_until_idle()
    assert totals(rt.db)["events_stored"] == 1


def test_auto_ip_and_nan_from_old_clients(make_runtime):
    from eventpipe.ingest.stored import show_event

    rt, key, c = client(make_runtime)
    eid = uuid.uuid4().hex
    body = b'{"event_id":"%s","message":"nan","extra":{"ratio":NaN},"user":{"ip_address":"{{auto}}"}}' % eid.encode()
    r = c.post("/api/7/store/", content=body, headers=auth(key))
    assert r.status_code == 200, r.text
    rt.broker.run_until_idle()
    event = show_event(rt.store, 7, eid)["event"]
    assert event["user"]["ip_address"] == "testclient"  # the TestClient's client address
    assert event["extra"]["ratio"] is None


def test_cors_for_browser_sdks(make_runtime):
    rt = make_runtime(max_event_bytes=4096)
    project = ensure_project(rt.db, 7, "web", origins=["https://app.example.com", "*.example.org"])
    c = TestClient(create_app(rt))
    pre = c.options("/api/7/envelope/", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-sentry-auth" in pre.headers["access-control-allow-headers"]
    ok = c.post(f"/api/7/store/?sentry_key={project.ingest_key}", json={"message": "browser"}, headers={"Origin": "https://x.example.org"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://x.example.org"
    bad = c.post(f"/api/7/store/?sentry_key={project.ingest_key}", json={"message": "x"}, headers={"Origin": "https://evil.test"})
    assert bad.status_code == 403 and bad.json()["reason"] == "forbidden_origin"
    assert c.options("/api/7/store/", headers={"Origin": "https://evil.test"}).status_code == 403
    assert c.post(f"/api/7/store/?sentry_key={project.ingest_key}", json={"message": "server"}).status_code == 200


def test_rejections_are_logged_once_and_counted(make_runtime, caplog):
    from prometheus_client import REGISTRY

    rt, key, c = client(make_runtime)
    before = REGISTRY.get_sample_value("eventpipe_ingest_rejected_total", {"reason": "wrong_key", "status": "403"}) or 0
    with caplog.at_level("WARNING", logger="eventpipe.ingest"):
        c.post("/api/7/store/", json={"message": "x"}, headers=auth("0" * 32))
    lines = [r.getMessage() for r in caplog.records if r.name == "eventpipe.ingest"]
    assert len(lines) == 1 and "403 wrong_key project=7 client=testclient" in lines[0]
    assert "0" * 32 not in lines[0]  # the key is never logged
    after = REGISTRY.get_sample_value("eventpipe_ingest_rejected_total", {"reason": "wrong_key", "status": "403"})
    assert after == before + 1
