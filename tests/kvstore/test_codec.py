"""The body codec (compressed frames, legacy bodies, corrupt frames) and stores read through it."""

import pytest

from eventpipe.kvstore import KVCorrupt, open_store
from eventpipe.kvstore.codec import decode, encode


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
