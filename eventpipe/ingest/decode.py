"""Request body decoding: Content-Encoding (br, gzip, deflate) and legacy base64+zlib store bodies.

SDKs compress what they send: ``sentry-sdk`` uses brotli whenever the ``brotli`` module is
importable, gzip otherwise; old raven clients sent store bodies as base64 of zlib. Every decoder
here is incremental and stops at ``limit`` decompressed bytes, so a compression bomb costs at most
the limit in memory and is answered 413 (:class:`BodyTooLarge`), never decompressed whole.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Protocol

import brotli

_READ = 64 * 1024  # output granularity of the zlib decoders


class BodyTooLarge(ValueError):
    """The (decompressed) body exceeds ``limit`` bytes."""

    def __init__(self, limit: int, what: str = "body") -> None:
        super().__init__(f"the decompressed {what} exceeds the {limit}-byte limit")
        self.limit = limit


class UndecodableBody(ValueError):
    """The body is not valid for its declared encoding."""


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


class _Zlib:
    """gzip (wbits 31), zlib-wrapped deflate (15) or raw deflate (-15), auto-detected for deflate:
    browsers and some SDKs send raw deflate under ``Content-Encoding: deflate``."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.inflater: zlib._Decompress | None = zlib.decompressobj(31) if encoding == "gzip" else None
        self.produced = 0

    def _inflater(self, first: bytes) -> zlib._Decompress:
        if self.inflater is None:
            # zlib streams start with a header whose first 16 bits are a multiple of 31
            zlib_header = len(first) >= 2 and (first[0] & 0x0F) == 8 and ((first[0] << 8) | first[1]) % 31 == 0
            self.inflater = zlib.decompressobj(15 if zlib_header else -15)
        return self.inflater

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        inflater = self._inflater(chunk)
        out = bytearray()
        data = chunk
        try:
            while True:
                room = self.limit + 1 - self.produced - len(out)
                piece = inflater.decompress(data, min(_READ, max(room, 1)))
                out += piece
                if self.produced + len(out) > self.limit:
                    raise BodyTooLarge(self.limit)
                data = inflater.unconsumed_tail
                if not data:
                    break
        except zlib.error as exc:
            raise UndecodableBody(f"cannot decompress the {self.encoding} body: {exc}") from None
        self.produced += len(out)
        return bytes(out)

    def finish(self) -> bytes:
        if self.inflater is None:
            return b""
        try:
            rest = self.inflater.flush()
        except zlib.error as exc:
            raise UndecodableBody(f"cannot decompress the {self.encoding} body: {exc}") from None
        if self.produced + len(rest) > self.limit:
            raise BodyTooLarge(self.limit)
        if not self.inflater.eof:
            raise UndecodableBody(f"the {self.encoding} body is truncated")
        self.produced += len(rest)
        return rest


class _Brotli:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.decompressor = brotli.Decompressor()
        self.produced = 0

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        try:
            piece = self.decompressor.process(chunk, output_buffer_limit=_READ)
            while True:
                out += piece
                if self.produced + len(out) > self.limit:
                    raise BodyTooLarge(self.limit)
                if self.decompressor.can_accept_more_data():
                    break
                piece = self.decompressor.process(b"", output_buffer_limit=_READ)
        except brotli.error as exc:
            raise UndecodableBody(f"cannot decompress the br body: {exc}") from None
        self.produced += len(out)
        return bytes(out)

    def finish(self) -> bytes:
        out = bytearray()
        try:
            while not self.decompressor.is_finished():  # drain output held back by the buffer limit
                piece = self.decompressor.process(b"", output_buffer_limit=_READ)
                if not piece:
                    raise UndecodableBody("the br body is truncated")
                out += piece
                if self.produced + len(out) > self.limit:
                    raise BodyTooLarge(self.limit)
        except brotli.error as exc:
            raise UndecodableBody(f"cannot decompress the br body: {exc}") from None
        self.produced += len(out)
        return bytes(out)


SUPPORTED_ENCODINGS = ("br", "gzip", "x-gzip", "deflate", "identity")


def decoder_for(content_encoding: str | None, limit: int) -> Decoder:
    """The incremental decoder for a ``Content-Encoding`` header value (one coding; ``identity``
    or empty for none). Raises :class:`UndecodableBody` for codings we do not support."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return _Identity()
    if coding in ("gzip", "x-gzip"):
        return _Zlib("gzip", limit)
    if coding == "deflate":
        return _Zlib("deflate", limit)
    if coding == "br":
        return _Brotli(limit)
    raise UndecodableBody(f"unsupported Content-Encoding {coding!r}; send one of br, gzip, deflate or none")


def decode_all(raw: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decode a whole body (files, tests); same limits as the streamed path."""
    dec = decoder_for(content_encoding, limit)
    out = bytearray()
    for start in range(0, len(raw), _READ):
        out += dec.feed(raw[start : start + _READ])
        if len(out) > limit:
            raise BodyTooLarge(limit)
    out += dec.finish()
    return bytes(out)


def decode_legacy_store_body(body: bytes, limit: int) -> bytes:
    """Old clients (raven) sent store bodies as base64, usually of zlib-compressed JSON. A body
    that already looks like JSON is returned unchanged."""
    stripped = body.lstrip()
    if not stripped or stripped[:1] in (b"{", b"["):
        return body
    try:
        decoded = base64.b64decode(stripped, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableBody(f"body is neither JSON nor base64 ({exc})") from None
    if decoded[:1] == b"\x78":  # zlib header
        dec = _Zlib("deflate", limit)
        return dec.feed(decoded) + dec.finish()
    if len(decoded) > limit:
        raise BodyTooLarge(limit)
    return decoded
