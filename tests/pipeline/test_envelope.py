"""Sentry envelopes: event items kept (with the header's id), attachments and other items separated,
truncated or mismatched items named, the project from the DSN."""

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
    assert env.events == [{"message": "hello!", "event_id": "9ec79c33ec9942ab8353589fcb2e04dc"}]  # the header's id
    assert env.skipped == 1 and env.other_items == {"session": 1}
    assert project_from_dsn(env.header["dsn"]) == 42
    with pytest.raises(InvalidEvent) as info:
        parse_envelope(b'{}\n{"type":"event"}\n{not json\n')
    assert info.value.field == "envelope.items[0].payload"


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b'{}\n{"type":"event","length":50}\n{"message":"short"}\n', "truncated_item", "envelope.items[0].payload"),
        (b'{}\n{"type":"event","length":5}\n{"message":"longer"}\n', "length_mismatch", "envelope.items[0].payload"),
        (b'{}\n{"length":2}\n{}\n', "invalid_envelope", "envelope.items[0].header.type"),
        (b'{}\n{"type":"event","length":-1}\n{}\n', "invalid_envelope", "envelope.items[0].header.length"),
    ],
)
def test_truncated_or_mismatched_items_are_errors(raw, reason, field):
    with pytest.raises(InvalidEvent) as info:
        parse_envelope(raw)
    assert (info.value.reason, info.value.field) == (reason, field)


def test_attachments_and_other_items_are_separated():
    blob = bytes(range(256)) * 4 + b"\n\n"
    raw = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
        b'{"type":"attachment","length":%d,"filename":"dump.bin","content_type":"application/octet-stream"}\n' % len(blob)
        + blob + b'\n{"type":"transaction","length":2}\n{}\n{"type":"client_report"}\n{}\n{"type":"weird"}\n{}'
    )
    env = parse_envelope(raw)
    assert env.events == [] and env.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert [(a.filename, a.payload) for a in env.attachments] == [("dump.bin", blob)]
    assert env.other_items == {"transaction": 1, "client_report": 1, "unknown": 1}


def test_json_or_envelope_is_decided_by_parsing():
    from eventpipe.pipeline.envelope import looks_like_envelope

    pretty = b'{\n  "type": "error",\n  "message": "hello"\n}\n'
    assert not looks_like_envelope(pretty)
    assert looks_like_envelope(b'{}\n{"type":"event"}\n{"message":"x"}\n')
