"""Body framing: optional zstd compression plus a checksum, with a header so old bodies still read.

Frame layout: ``b"EPK1"`` magic, one format byte (flags; bit 0: zstd, 0: stored raw), 4-byte
big-endian CRC32 of the *uncompressed* payload, then the payload. Bytes that do not start with the
magic are returned as they are, so bodies written before framing existed (or by another tool)
still read. Decoding does not depend on the level a body was written with: every body written
since framing existed (level 3 until 2026-11) still reads.

Level and threshold are chosen by measurement (``python -m benchmarks.codec``, figures in
docs/benchmarks-kv.md): on event bodies zstd level 1 stores within 4 % of level 3's size for
35-45 % less CPU per put, so level 1. Bodies under 512 bytes are stored raw: zstd saves 10-30 %
of so little that the CPU is not worth it. A dictionary would shrink 1 KB events six-fold, but
only one trained on the same shapes; bodies from users' SDKs vary, so none is shipped.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping

import zstandard

from .base import KeyValueStore, KVCorrupt

MAGIC = b"EPK1"
FLAG_ZSTD = 0x01
_HEADER = struct.Struct(">4sBI")
ZSTD_LEVEL = 1
COMPRESS_MIN_BYTES = 512  # below this zstd saves 10-30 % of a few hundred bytes: stored raw

_local = threading.local()


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    # zstd contexts are not thread-safe; one pair per thread keeps them allocation-free on the hot path.
    pair = getattr(_local, "pair", None)
    if pair is None:
        pair = (zstandard.ZstdCompressor(level=ZSTD_LEVEL), zstandard.ZstdDecompressor())
        _local.pair = pair
    return pair


def encode(data: bytes, *, compress: bool = True) -> bytes:
    crc = zlib.crc32(data)
    flags = 0
    payload = data
    if compress and len(data) >= COMPRESS_MIN_BYTES:
        packed = _zstd()[0].compress(data)
        if len(packed) < len(data):
            payload, flags = packed, FLAG_ZSTD
    return _HEADER.pack(MAGIC, flags, crc) + payload


def decode(key: str, frame: bytes) -> bytes:
    if not frame.startswith(MAGIC):
        return frame  # written before framing: raw bytes
    if len(frame) < _HEADER.size:
        raise KVCorrupt(key, "truncated header")
    _, flags, crc = _HEADER.unpack_from(frame)
    payload = frame[_HEADER.size:]
    if flags & FLAG_ZSTD:
        try:
            payload = _zstd()[1].decompress(payload)
        except zstandard.ZstdError as exc:
            raise KVCorrupt(key, f"zstd: {exc}") from None
    if zlib.crc32(payload) != crc:
        raise KVCorrupt(key, "checksum mismatch")
    return payload


class CodecStore:
    """Wraps a raw backend: encodes on write, decodes and verifies on read. Same protocol outside."""

    def __init__(self, inner: KeyValueStore, *, compress: bool = True) -> None:
        self.inner = inner
        self.compress = compress
        self.url = inner.url

    def get(self, key: str) -> bytes | None:
        raw = self.inner.get(key)
        return None if raw is None else decode(key, raw)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        return {k: decode(k, v) for k, v in self.inner.get_many(list(keys)).items()}

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.inner.put(key, encode(value, compress=self.compress), ttl=ttl)

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        self.inner.put_many({k: encode(v, compress=self.compress) for k, v in items.items()}, ttl=ttl)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        self.inner.delete_many(list(keys))

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.keys(prefix)

    def get_raw(self, key: str) -> bytes | None:
        """The stored frame, undecoded: for migration, which copies frames verbatim."""
        return self.inner.get(key)

    def close(self) -> None:
        self.inner.close()
