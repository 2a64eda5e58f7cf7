"""The fast scrubber gives exactly the reference's output on generated events (nested data, tricky
keys, card numbers, bearer tokens, secrets in URLs and key=value text), and never mutates input."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.pipeline.scrub import is_sensitive_key, scrub_event, scrub_string
from tests.pipeline.scrub_reference import key_words, scrub_event_reference, scrub_text, sensitive_key

TRICKY_KEYS = [
    "password", "db_password", "Password", "passwd", "passenger_count", "compass_heading", "author",
    "auth", "X-Auth-Token", "Authorization", "api_key", "apiKey", "APIKey", "x-api-key", "apikey",
    "private_key", "privateKey", "secret", "client_secret", "secretary", "token", "access_token",
    "csrftoken", "tokenizer", "sessionid", "session", "PHPSESSID", "user_session", "mysql_pwd", "PWD",
    "two-factor", "otp", "credit_card", "card", "count", "id", "email", "ip_address", "username",
    "credentials", "cookies", "Cookie", "Set-Cookie", "keyboard", "monkey", "a.b.password", "pass",
]

cards = st.builds(
    lambda prefix, digits, sep: prefix + sep.join(digits[i:i + 4] for i in range(0, len(digits), 4)),
    st.sampled_from(["4111", "4242", "5500", "5105", "6011", "6500", "378", "341"]),
    st.text("0123456789", min_size=11, max_size=13),
    st.sampled_from(["", " ", "-"]),
)
bearers = st.builds(lambda b, t: f"{b} {t}", st.sampled_from(["Bearer", "bearer", "BEARER"]),
                    st.text("abcdefXYZ0123456789._-+/=", min_size=1, max_size=20))
pairs = st.builds(lambda k, sep, v: f"{k}{sep}{v}", st.sampled_from(TRICKY_KEYS),
                  st.sampled_from(["=", ": ", ":", " = "]), st.text("abc123XY_-./", min_size=0, max_size=10))
urls = st.builds(lambda u, p: f"postgres://{u}:{p}@db.example.com/x", st.text("abc12", min_size=1, max_size=5),
                 st.text("pw9%_.", min_size=1, max_size=6))
fixed = st.sampled_from([
    "123-45-6789", "DE89370400440532013000", "GB82WEST12345698765432",
    "-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----", "4111111111111111=5",
    "GET /x?token=abc&page=2", "nothing to hide", "", "x", "passenger_count=3",
])
pieces = st.one_of(cards, bearers, pairs, urls, fixed, st.text(max_size=30),
                   st.text("ab =:&;,/@-1234567890 \tBearer", max_size=30))
texts = st.lists(pieces, max_size=5).flatmap(
    lambda parts: st.sampled_from([" ", "&", ", ", "", "\n", "?"]).map(lambda sep: sep.join(parts)))
keys = st.one_of(st.sampled_from(TRICKY_KEYS), st.text(max_size=12))
scalars = st.one_of(texts, st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
        st.tuples(st.sampled_from(TRICKY_KEYS), texts).map(list),  # header/tag pairs
    ),
    max_leaves=25,
)
frames = st.fixed_dictionaries(
    {"function": st.sampled_from(["f", "token_check"]), "context_line": texts},
    optional={"vars": st.dictionaries(keys, json_values, max_size=5)},
)
events = st.fixed_dictionaries(
    {"event_id": st.just("0" * 32), "level": st.just("error")},
    optional={
        "message": texts,
        "extra": st.dictionaries(keys, json_values, max_size=5),
        "request": st.dictionaries(st.sampled_from(["url", "headers", "data", "cookies", "query_string", "env"]), json_values),
        "user": st.dictionaries(keys, json_values, max_size=5),
        "contexts": st.dictionaries(keys, json_values, max_size=3),
        "breadcrumbs": st.lists(st.dictionaries(st.sampled_from(["message", "data", "category"]), json_values), max_size=4),
        "tags": st.lists(st.tuples(keys, texts).map(list), max_size=4),
        "logentry": st.fixed_dictionaries({"message": texts}),
        "exception": st.lists(st.fixed_dictionaries({"type": st.just("E"), "value": texts, "frames": st.lists(frames, max_size=4)}), max_size=2),
        "culprit": texts,
    },
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_fast_scrubber_equals_reference(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    assert scrub_event(event) == scrub_event_reference(event)
    assert event == before, "scrub_event must not mutate its input"


@settings(max_examples=400, deadline=None)
@given(texts)
def test_strings_equal_reference(text: str) -> None:
    assert scrub_string(text) == scrub_text(text)


@settings(max_examples=400, deadline=None)
@given(keys)
def test_key_decisions_equal_reference(key: str) -> None:
    assert is_sensitive_key(key) == sensitive_key(key)


def test_reference_key_words() -> None:
    assert key_words("X-Auth-Token") == ["x", "auth", "token"]
    assert key_words("APIKey") == ["api", "key"]
    assert key_words("passenger_count") == ["passenger", "count"]
    assert key_words("abc123Def") == ["abc", "123", "def"]
