"""Any JSON object or envelope byte string either ingests (200) or gets a 4xx whose JSON body names
the reason; never a 5xx, and the queued events never crash the workers that process them."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from eventpipe.ingest.server import create_app
from eventpipe.metadata.queries import ensure_project

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
event_keys = st.sampled_from([
    "event_id", "timestamp", "level", "platform", "message", "logentry", "exception", "fingerprint", "tags", "extra",
    "user", "request", "breadcrumbs", "stacktrace", "culprit", "type", "sentry.interfaces.Exception",
    "sentry.interfaces.Message", "sentry.interfaces.User", "sentry.interfaces.Stacktrace", "transaction",
])
events = st.dictionaries(event_keys, json_values, max_size=8)
item_types = st.sampled_from(["event", "transaction", "attachment", "session", "client_report", "check_in", "weird"])


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    header = draw(st.dictionaries(st.sampled_from(["event_id", "dsn", "sent_at"]), json_values, max_size=3))
    out = [orjson.dumps(header)]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(item_types)
        payload = orjson.dumps(draw(events)) if draw(st.booleans()) else draw(st.binary(max_size=60))
        item: dict = {"type": kind}
        if draw(st.booleans()):
            item["length"] = draw(st.sampled_from([len(payload), len(payload) + 3, max(0, len(payload) - 2)]))
        out += [orjson.dumps(item), payload]
    raw = b"\n".join(out)
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]  # truncated anywhere
    return raw


@pytest.fixture(scope="module")
def app_and_key(tmp_path_factory: pytest.TempPathFactory):
    from eventpipe.config import load_settings
    from eventpipe.runtime import Runtime

    rt = Runtime(load_settings(home=tmp_path_factory.mktemp("fuzz") / ".eventpipe", max_event_bytes=64_000))
    key = ensure_project(rt.db, 3, "fuzz").ingest_key
    yield rt, TestClient(create_app(rt, rate_per_project=1e9, burst=1e9)), key
    rt.close()


def check(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["reason"] and body["detail"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events)
def test_any_json_object_ingests_or_is_a_named_4xx(app_and_key, event) -> None:
    rt, client, key = app_and_key
    check(client.post(f"/api/3/store/?sentry_key={key}", content=orjson.dumps(event)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(envelopes())
def test_any_envelope_ingests_or_is_a_named_4xx(app_and_key, raw) -> None:
    rt, client, key = app_and_key
    check(client.post(f"/api/3/envelope/?sentry_key={key}", content=raw))


def test_the_queued_events_never_crash_a_worker(app_and_key) -> None:
    """After the fuzzing above, process everything that was accepted: no task may fail."""
    from sqlalchemy import func, select

    from eventpipe.metadata.models import DeadLetter

    rt, _client, _key = app_and_key
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        dead = s.scalar(select(func.count()).select_from(DeadLetter))
    assert dead == 0
