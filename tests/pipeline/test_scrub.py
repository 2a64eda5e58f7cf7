from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import FILTERED, scrub_event, scrub_string


def test_sensitive_keys_are_filtered_everywhere():
    event = normalize_event(
        {
            "message": "login failed",
            "extra": {"password": "hunter2", "nested": {"api_key": "k", "ok": 1}},
            "request": {"headers": {"Authorization": "Bearer abcdefghijkl", "Accept": "*/*"}, "cookies": {"sessionid": "s"}},
            "user": {"id": "1", "email": "a@b.c", "auth_token": "t"},
            "exception": {"values": [{"type": "E", "value": "token=abc123", "stacktrace": {"frames": [
                {"module": "app", "function": "f", "vars": {"secret": "x", "n": 2}}]}}]},
        },
        project_id=1,
        received=1_760_000_000.0,
    )
    out = scrub_event(event)
    assert out["extra"]["password"] == FILTERED
    assert out["extra"]["nested"] == {"api_key": FILTERED, "ok": 1}
    assert out["request"]["headers"] == {"Authorization": FILTERED, "Accept": "*/*"}
    assert out["request"]["cookies"] == FILTERED  # the whole cookie jar, as Sentry does
    assert out["user"] == {"id": "1", "email": "a@b.c", "auth_token": FILTERED}
    assert out["exception"][0]["value"] == f"token={FILTERED}"
    assert out["exception"][0]["frames"][0]["vars"] == {"secret": FILTERED, "n": 2}
    assert event["extra"]["password"] == "hunter2", "scrubbing must not mutate its input"


def test_secrets_inside_strings():
    assert scrub_string("GET /x?token=abc&page=2") == f"GET /x?token={FILTERED}&page=2"
    assert scrub_string("Authorization: Bearer abcdefgh12345") == f"Authorization: {FILTERED}"
    assert scrub_string("postgres://app:pw@db/x") == f"postgres://{FILTERED}@db/x"
    card = scrub_string("card 4111 1111 1111 1111 declined")
    assert "4111" not in card and FILTERED in card
    assert scrub_string("nothing to hide") == "nothing to hide"


def test_tag_pairs_with_sensitive_names():
    event = normalize_event({"message": "x", "tags": {"api_token": "abc", "region": "eu"}}, project_id=1, received=1_760_000_000.0)
    assert scrub_event(event)["tags"] == [["api_token", FILTERED], ["region", "eu"]]
