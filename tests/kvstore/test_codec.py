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
