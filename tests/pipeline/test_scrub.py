from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import FILTERED, is_sensitive_key, scrub_event, scrub_string


def test_sensitive_keys_are_filtered_everywhere():
    event = normalize_event(
        {
            "message": "login failed",
            "extra": {"password": "hunter2", "nested": {"api_key": "k", "ok": 1}, "passenger_count": 3, "compass_heading": "NW"},
            "request": {"headers": {"Authorization": "Bearer abcdefghijkl", "Accept": "*/*"}, "cookies": {"sessionid": "s"}},
            "user": {"id": "1", "email": "a@b.c", "auth_token": "t"},
            "exception": {"values": [{"type": "E", "value": "token=abc123", "stacktrace": {"frames": [
                {"module": "app", "function": "f", "vars": {"secret": "x", "n": 2, "author": "ann"}}]}}]},
        },
        project_id=1,
        received=1_760_000_000.0,
    )
    out = scrub_event(event)
    assert out["extra"]["password"] == FILTERED
    assert out["extra"]["nested"] == {"api_key": FILTERED, "ok": 1}
    assert out["extra"]["passenger_count"] == 3 and out["extra"]["compass_heading"] == "NW"
    assert out["request"]["headers"] == {"Authorization": FILTERED, "Accept": "*/*"}
    assert out["request"]["cookies"] == FILTERED  # the whole cookie jar
    assert out["user"] == {"id": "1", "email": "a@b.c", "auth_token": FILTERED}
    assert out["exception"][0]["value"] == f"token={FILTERED}"
    assert out["exception"][0]["frames"][0]["vars"] == {"secret": FILTERED, "n": 2, "author": "ann"}
    assert event["extra"]["password"] == "hunter2", "scrubbing must not mutate its input"


def test_keys_are_matched_as_whole_words():
    for key in ("password", "db_password", "passwd", "Authorization", "X-Auth-Token", "api_key", "apiKey",
                "x-api-key", "private_key", "client_secret", "access_token", "csrftoken", "sessionid",
                "PHPSESSID", "mysql_pwd", "credentials", "two_factor", "credit_card"):
        assert is_sensitive_key(key), key
    for key in ("passenger_count", "compass_heading", "author", "tokenizer", "keyboard", "PWD", "monkey", "secretary"):
        assert not is_sensitive_key(key), key


def test_secrets_inside_strings():
    assert scrub_string("GET /x?token=abc&page=2") == f"GET /x?token={FILTERED}&page=2"
    assert scrub_string("passenger_count=3&compass=N") == "passenger_count=3&compass=N"
    assert scrub_string("Authorization: Bearer abcdefgh12345") == f"Authorization: {FILTERED}"
    assert scrub_string("sent Bearer abcdefgh12345 upstream") == f"sent {FILTERED} upstream"
    assert scrub_string("postgres://app:pw@db/x") == f"postgres://app:{FILTERED}@db/x"  # the password only
    assert scrub_string("card 4111 1111 1111 1111 declined") == f"card {FILTERED} declined"
    assert scrub_string("amex 3782-822463-10005 ok") == f"amex {FILTERED} ok"
    assert scrub_string("order 1234567890123456") == "order 1234567890123456"  # no card vendor prefix
    assert scrub_string("ssn 078-05-1120") == f"ssn {FILTERED}"
    assert scrub_string("to DE89370400440532013000 now") == f"to {FILTERED} now"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    assert scrub_string(pem) == f"-----BEGIN RSA PRIVATE KEY-----\n{FILTERED}\n-----END RSA PRIVATE KEY-----"
    text = "nothing to hide"
    assert scrub_string(text) is text


def test_tag_pairs_with_sensitive_names():
    event = normalize_event({"message": "x", "tags": {"api_token": "abc", "region": "eu"}}, project_id=1, received=1_760_000_000.0)
    assert scrub_event(event)["tags"] == [["api_token", FILTERED], ["region", "eu"]]


def test_unchanged_parts_are_shared_not_copied():
    frames = [{"function": "f", "vars": {"n": 1, "items": [1, 2, 3]}}]
    event = {"event_id": "0" * 32, "extra": {"a": {"b": [1, "x"]}}, "exception": [{"type": "E", "value": "v", "frames": frames}],
             "request": {"url": "https://x/?page=2", "data": {"password": "p", "big": {"k": list(range(50))}}}}
    out = scrub_event(event)
    assert out["extra"] is event["extra"] and out["exception"] is event["exception"]
    assert out["request"] is not event["request"] and out["request"]["data"]["big"] is event["request"]["data"]["big"]
    assert out["request"]["data"]["password"] == FILTERED and event["request"]["data"]["password"] == "p"
