"""Sentry envelopes: event items kept, other items skipped, the project from the DSN, bad payloads named."""

import pytest

from eventpipe.pipeline.envelope import parse_envelope, project_from_dsn
from eventpipe.pipeline.errors import InvalidEvent


def test_envelope_parsing():
    raw = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://key@sentry.example.com/42"}\n'
        b'{"type":"event","length":20}\n{"message":"hello!"}\n'
        b'{"type":"session"}\n{"started":"2020-02-07T14:16:00Z"}\n'
    )
    env = parse_envelope(raw)
    assert env.events == [{"message": "hello!"}]
    assert env.skipped == 1
    assert project_from_dsn(env.header["dsn"]) == 42
    with pytest.raises(InvalidEvent) as info:
        parse_envelope(b'{}\n{"type":"event"}\n{not json\n')
    assert info.value.field == "envelope.items[0].payload"
