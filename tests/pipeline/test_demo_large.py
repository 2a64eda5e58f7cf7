import orjson

from eventpipe.pipeline.demo import generate
from eventpipe.pipeline.normalize import normalize_event


def test_large_events_are_deterministic_realistic_and_about_50_kb():
    first = generate(10, seed=5, now=1_760_000_000.0, large=True)
    again = generate(10, seed=5, now=1_760_000_000.0, large=True)
    assert [orjson.dumps(e.payload) for e in first] == [orjson.dumps(e.payload) for e in again]
    assert len({e.payload["event_id"] for e in first}) == 10
    for event in first:
        size = len(orjson.dumps(event.payload))
        assert 40_000 <= size <= 65_000, size
        frames = event.payload["exception"]["values"][0]["stacktrace"]["frames"]
        assert len(frames) == 40 and all(len(f["pre_context"]) == 5 and f["vars"] for f in frames)
        assert len(event.payload["breadcrumbs"]["values"]) == 30
        assert {"request", "user", "tags", "contexts"} <= event.payload.keys()
        normalized = normalize_event(event.payload, project_id=event.project_id, received=1_760_000_000.0)
        assert len(normalized["exception"][0]["frames"]) == 40


def test_small_events_do_not_change_with_the_large_option_present():
    default = generate(300, seed=9, now=1_760_000_000.0)
    explicit = generate(300, seed=9, now=1_760_000_000.0, large=False)
    assert [orjson.dumps(e.payload) for e in default] == [orjson.dumps(e.payload) for e in explicit]
    assert all(len(orjson.dumps(e.payload)) < 5_000 for e in default)


def test_the_secrets_a_large_event_leaks_are_scrubbed_and_the_rest_kept():
    from eventpipe.pipeline.scrub import FILTERED, scrub_event
    from eventpipe.pipeline.trim import trim_event

    raw = next(e.payload for e in generate(20, seed=11, now=1_760_000_000.0, large=True)
               if b"4111 1111 1111 1111" in orjson.dumps(e.payload))  # the breadcrumb leaking a card
    event = scrub_event(trim_event(normalize_event(raw, project_id=1, received=1_760_000_000.0)))
    request = event["request"]
    assert request["headers"]["Authorization"] == FILTERED and request["headers"]["Host"] == "shop.example.com"
    assert request["cookies"] == FILTERED
    assert request["data"]["password"] == FILTERED and request["data"]["card_holder"] == "A. Customer"
    frames = event["exception"][0]["frames"]
    assert frames[-3]["vars"]["password"] == FILTERED
    assert all(f["context_line"] == g["context_line"] for f, g in zip(frames, raw["exception"]["values"][0]["stacktrace"]["frames"]))
    body = orjson.dumps(event)
    assert b"4111 1111 1111 1111" not in body and b"hunter2" not in body and b"correct horse" not in body
    assert event["user"]["email"] == raw["user"]["email"]
