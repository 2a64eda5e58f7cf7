import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.normalize import is_in_app, normalize_event

NOW = 1_760_000_000.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
event_keys = st.sampled_from(
    ["event_id", "timestamp", "level", "platform", "message", "logentry", "exception", "fingerprint", "tags",
     "extra", "user", "request", "release", "breadcrumbs", "contexts", "culprit"]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(event_keys, json_values, max_size=8) | json_values)
def test_any_json_normalizes_or_is_rejected_clearly(data):
    try:
        out = normalize_event(data, project_id=1, received=NOW)
    except InvalidEvent as exc:
        assert exc.reason and exc.field and exc.detail
        assert exc.field in str(exc)
        return
    assert len(out["event_id"]) == 32
    assert out["level"] in {"fatal", "error", "warning", "info", "debug"}
    assert math.isfinite(out["timestamp"])
    for error in out.get("errors", []):
        assert error["type"] and error["field"] and error["error"]


def test_levels_platforms_and_timestamps_are_normalized():
    out = normalize_event(
        {"message": "x", "level": "WARN", "platform": "js", "timestamp": "2025-10-09T08:53:20Z"},
        project_id=1,
        received=NOW,
    )
    assert out["level"] == "warning"
    assert out["platform"] == "javascript"
    assert out["timestamp"] == 1760000000.0


def test_future_and_ancient_timestamps_are_clamped_with_a_recorded_error():
    future = normalize_event({"message": "x", "timestamp": NOW + 3600}, project_id=1, received=NOW)
    assert future["timestamp"] == NOW and future["errors"][0]["field"] == "timestamp"
    old = normalize_event({"message": "x", "timestamp": NOW - 90 * 86400}, project_id=1, received=NOW)
    assert old["timestamp"] == NOW


def test_only_a_non_object_is_rejected():
    with pytest.raises(InvalidEvent) as info:
        normalize_event([1, 2], project_id=1, received=NOW)
    assert (info.value.reason, info.value.field) == ("not_an_object", "$")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"message": "x", "event_id": "nope"}, "event_id"),
        ({"message": "x", "timestamp": "yesterday"}, "timestamp"),
        ({"message": "x", "timestamp": float("nan")}, "timestamp"),
        ({"message": "x", "exception": "boom"}, "exception"),
        ({"exception": {"values": [None, {"type": "E"}]}}, "exception.values[0]"),
        ({"exception": {"values": [{"type": "E", "stacktrace": {"frames": "x"}}]}}, "exception.values[0].stacktrace"),
        ({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [None, {"function": "f"}]}}]}},
         "exception.values[0].stacktrace.frames[0]"),
        ({"message": "x", "fingerprint": {"a": 1}}, "fingerprint"),
        ({"logentry": {"formatted": 42, "message": "tmpl"}}, "logentry.formatted"),
    ],
)
def test_defects_are_repaired_and_recorded(event, field):
    out = normalize_event(event, project_id=1, received=NOW)
    assert field in [e["field"] for e in out["errors"]]
    assert len(out["event_id"]) == 32 and out["timestamp"] == NOW


def test_bad_event_id_is_replaced_deterministically():
    a = normalize_event({"message": "x", "event_id": "nope"}, project_id=1, received=NOW)
    b = normalize_event({"message": "x", "event_id": "nope"}, project_id=1, received=NOW)
    assert a["event_id"] == b["event_id"]


def test_empty_and_stacktrace_only_events_are_kept():
    assert "errors" not in normalize_event({}, project_id=1, received=NOW)
    out = normalize_event({"stacktrace": {"frames": [{"module": "app.x", "function": "f"}]}}, project_id=1, received=NOW)
    assert out["stacktrace"]["frames"][0]["function"] == "f"


def test_legacy_interface_keys_are_accepted():
    out = normalize_event(
        {
            "sentry.interfaces.Exception": {"values": [{"type": "E", "value": "v"}]},
            "sentry.interfaces.Message": {"message": "m %s", "params": ["1"]},
            "sentry.interfaces.User": {"id": "u1"},
            "sentry.interfaces.Http": {"url": "http://x/"},
            "sentry.interfaces.Breadcrumbs": {"values": [{"message": "b"}]},
            "sentry.interfaces.Stacktrace": {"frames": [{"function": "f"}]},
        },
        project_id=1,
        received=NOW,
    )
    assert out["exception"][0]["type"] == "E" and out["message"] == "m 1"
    assert out["user"] == {"id": "u1"} and out["request"]["url"] == "http://x/"
    assert out["breadcrumbs"][0]["message"] == "b" and out["stacktrace"]["frames"][0]["function"] == "f"
    both = normalize_event({"user": {"id": "new"}, "sentry.interfaces.User": {"id": "old"}}, project_id=1, received=NOW)
    assert both["user"] == {"id": "new"}


def test_auto_ip_is_the_client_address():
    event = {"message": "x", "user": {"id": "1", "ip_address": "{{auto}}"}}
    assert normalize_event(event, project_id=1, received=NOW, client_ip="10.1.2.3")["user"]["ip_address"] == "10.1.2.3"
    assert "ip_address" not in normalize_event(event, project_id=1, received=NOW)["user"]
    assert event["user"]["ip_address"] == "{{auto}}"  # the input is not mutated


def test_unknown_level_is_repaired_not_rejected():
    out = normalize_event({"message": "x", "level": "loud"}, project_id=1, received=NOW)
    assert out["level"] == "error" and out["errors"][0]["field"] == "level"


def test_in_app_detection():
    assert is_in_app({"module": "app.views", "filename": "app/views.py"})
    assert not is_in_app({"module": "django.core.handlers", "filename": "x.py"})
    assert not is_in_app({"filename": "/usr/lib/python3/site-packages/requests/api.py"})
    assert not is_in_app({"filename": "node_modules/react-dom/index.js"})
    out = normalize_event(
        {"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"module": "java.util.List", "function": "get"},
            {"module": "com.acme.Billing", "function": "charge"},
            {"module": "com.acme.Lib", "function": "x", "in_app": False},
        ]}}]}},
        project_id=1,
        received=time.time(),
    )
    assert [f["in_app"] for f in out["exception"][0]["frames"]] == [False, True, False]


def test_logentry_is_formatted_and_keeps_template():
    out = normalize_event({"logentry": {"message": "user %s failed", "params": ["bob"]}}, project_id=1, received=NOW)
    assert out["message"] == "user bob failed"
    assert out["logentry"]["message"] == "user %s failed"


def test_deep_nesting_is_bounded():
    deep: dict = {}
    cur = deep
    for _ in range(50):
        cur["a"] = {}
        cur = cur["a"]
    out = normalize_event({"message": "x", "extra": deep}, project_id=1, received=NOW)
    depth, cur = 0, out["extra"]
    while isinstance(cur, dict):
        cur, depth = cur.get("a"), depth + 1
    assert depth <= 9


def test_normalizing_twice_changes_nothing():
    """The process stage may see a body it already normalized (a redelivery): same event, same
    fingerprint, so a redelivered event never lands in another issue."""
    import orjson

    from eventpipe.pipeline.demo import generate
    from eventpipe.pipeline.errors import InvalidEvent
    from eventpipe.pipeline.grouping import fingerprint_hash
    from eventpipe.pipeline.normalize import normalize_event
    from eventpipe.pipeline.scrub import scrub_event

    checked = 0
    for ev in generate(300, 7, now=1_700_000_000.0):
        try:
            once = scrub_event(normalize_event(ev.payload, project_id=ev.project_id, received=1_700_000_000.0))
        except InvalidEvent:
            continue
        twice = scrub_event(normalize_event(orjson.loads(orjson.dumps(once)), project_id=ev.project_id, received=1_700_000_000.0))
        assert twice == once
        assert fingerprint_hash(twice) == fingerprint_hash(once)
        checked += 1
    assert checked > 250
