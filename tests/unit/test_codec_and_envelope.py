import pytest

from eventpipe.kvstore import KVCorrupt, open_store
from eventpipe.kvstore.codec import decode, encode
from eventpipe.pipeline.envelope import parse_envelope, project_from_dsn
from eventpipe.pipeline.errors import InvalidEvent


def test_codec_round_trip_and_legacy_bodies():
    body = b'{"message": "' + b"x" * 5000 + b'"}'
    frame = encode(body)
    assert len(frame) < len(body)
    assert decode("k", frame) == body
    assert decode("k", b"plain old bytes") == b"plain old bytes"


def test_corrupt_frame_names_the_key():
    frame = bytearray(encode(b"hello world" * 100))
    frame[-1] ^= 0xFF
    with pytest.raises(KVCorrupt) as info:
        decode("1/abc", bytes(frame))
    assert "1/abc" in str(info.value)


def test_memory_and_filesystem_stores_through_codec(tmp_path):
    for url in ("memory://", f"file://{tmp_path}/kv"):
        store = open_store(url)
        store.put_many({"1/a": b"A" * 1000, "1/b": b"B"})
        assert store.get_many(["1/a", "1/b", "1/zz"]) == {"1/a": b"A" * 1000, "1/b": b"B"}
        assert sorted(store.keys("1/")) == ["1/a", "1/b"]
        store.delete_many(["1/a", "1/missing"])
        assert store.get("1/a") is None and store.exists("1/b")


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


def test_bodies_written_by_earlier_versions_still_decode():
    import struct
    import zlib

    import zstandard

    from eventpipe.kvstore.codec import COMPRESS_MIN_BYTES, MAGIC

    body = b'{"message": "' + b"level three " * 400 + b'"}'
    level3 = MAGIC + struct.pack(">BI", 1, zlib.crc32(body)) + zstandard.ZstdCompressor(level=3).compress(body)
    assert decode("k", level3) == body  # the level it was written with does not matter
    small = b'{"m": "' + b"s" * 300 + b'"}'
    assert len(small) < COMPRESS_MIN_BYTES
    raw_frame = encode(small)
    assert raw_frame[len(MAGIC)] == 0 and raw_frame.endswith(small)  # stored raw, format byte 0
    assert decode("k", raw_frame) == small
    big = encode(body)
    assert big[len(MAGIC)] == 1 and len(big) < len(body) // 5
