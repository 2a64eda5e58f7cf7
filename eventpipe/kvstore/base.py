"""The KeyValueStore protocol every body backend implements, and its error types.

Backends store opaque bytes; compression and checksums live in :mod:`eventpipe.kvstore.codec`,
applied by :class:`~eventpipe.kvstore.codec.CodecStore` around any backend, so every backend
gets them identically and a plugin author only writes the raw I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from eventpipe.errors import EventpipeError, redact_url  # noqa: F401  (redact_url: re-exported for the stores)


#: keys under this prefix are eventpipe's bookkeeping (migration checkpoints), not event bodies
RESERVED_PREFIX = "_eventpipe/"


class KVError(EventpipeError):
    """Base class of key-value store errors (a bad URL or option unless a subclass says otherwise)."""

    exit_code = 2
    hint = "fix the URL or options (`eventpipe kv backends` lists the schemes)"


class KVUnavailable(KVError):
    """The backend could not be reached or timed out. Retry later; the data is not known to be lost."""

    retryable = True
    exit_code = 3
    hint = ("check the server is up and the URL is right, then run the same command again "
            "(`eventpipe kv migrate` resumes where it stopped)")


class KVCorrupt(KVError):
    """A stored body failed its checksum or could not be decoded. Retrying will not help."""

    retryable = False
    exit_code = 1

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"corrupt body at key {key!r}: {reason}; restore it from another store or delete it")
        self.key = key


class KVBadURL(KVError, ValueError):
    """A store URL names no known backend (the message lists the known schemes)."""


class KVBadKey(KVError, ValueError):
    """A key does not fit the key rules (printable, no '..', at most 512 bytes)."""


_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-][A-Za-z0-9_.:/\-]{0,511}$")


def check_key(key: str) -> str:
    """Keys are portable across filesystems, SQL, Redis and S3: reject anything else early."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key or key.endswith("/"):
        raise KVBadKey(f"invalid key {key!r}: use letters, digits and _.:-/ (no '..', no leading or trailing '/')")
    return key


@runtime_checkable
class KeyValueStore(Protocol):
    """What the pipeline needs from a body store.

    Semantics every backend keeps (the conformance suite checks them):
    missing keys read as ``None``; ``put`` overwrites; ``delete`` of a missing key is not an error;
    batch calls are one round trip (or a bounded parallel fan-out), never a Python loop of singles.
    """

    url: str

    def get(self, key: str) -> bytes | None: ...
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...
    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...
    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_many(self, keys: Iterable[str]) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def close(self) -> None: ...


class BatchFallbackMixin:
    """Batch calls for backends whose single calls are already cheap local operations.

    Only for local backends (memory, filesystem) where a loop *is* the efficient batch; network
    backends must override these with real pipelines or multi-object calls.
    """

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for key in keys:
            value = self.get(key)  # type: ignore[attr-defined]
            if value is not None:
                out[key] = value
        return out

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        for key, value in items.items():
            self.put(key, value, ttl=ttl)  # type: ignore[attr-defined]

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)  # type: ignore[attr-defined]
