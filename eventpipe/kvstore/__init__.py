"""Pluggable key-value stores for event bodies, opened by URL.

``open_store(url)`` picks a backend by URL scheme: built-ins below, plus any third-party class
registered in the ``eventpipe.kvstores`` entry-point group (scheme -> ``module:Class``). Every
store is returned wrapped in :class:`CodecStore` (compression + checksum).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .base import KeyValueStore, KVBadKey, KVBadURL, KVCorrupt, KVError, KVUnavailable, check_key, redact_url
from .codec import CodecStore
from .dualwrite import DualWriteStore

if TYPE_CHECKING:
    from eventpipe.config import Settings

BUILTIN_BACKENDS: dict[str, str] = {
    "file": "eventpipe.kvstore.filesystem:FilesystemStore",
    "memory": "eventpipe.kvstore.memory:MemoryStore",
    "sqlite": "eventpipe.kvstore.sqlite:SQLiteStore",
    "postgresql+psycopg": "eventpipe.kvstore.sql:PostgresStore",
    "postgresql": "eventpipe.kvstore.sql:PostgresStore",
    "redis": "eventpipe.kvstore.redis:RedisStore",
    "rediss": "eventpipe.kvstore.redis:RedisStore",
    "redis+cluster": "eventpipe.kvstore.redis:RedisClusterStore",
    "s3": "eventpipe.kvstore.s3:S3Store",
}

ENTRY_POINT_GROUP = "eventpipe.kvstores"


def backends() -> dict[str, dict[str, str]]:
    """Every known scheme -> {"target": "module:Class", "source": "builtin"|distribution}."""
    out = {scheme: {"target": target, "source": "builtin"} for scheme, target in BUILTIN_BACKENDS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "unknown"
        if ep.name not in out or out[ep.name]["source"] != "builtin":
            out[ep.name] = {"target": ep.value, "source": dist}
    return out


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def open_raw_store(url: str) -> KeyValueStore:
    """Open the backend for ``url`` without the codec (for migration and benchmarks)."""
    scheme = urlparse(url).scheme
    known = backends()
    if scheme not in known:
        raise KVBadURL(
            f"no key-value backend for scheme {scheme!r} in {redact_url(url)!r}; "
            f"known: {', '.join(sorted(known))} (see `eventpipe kv backends`)"
        )
    cls = _load(known[scheme]["target"])
    return cls(url)


def open_store(url: str, *, compress: bool = True) -> CodecStore:
    """Open a body store by URL, with compression and checksums."""
    return CodecStore(open_raw_store(url), compress=compress)


def open_configured_store(settings: Settings) -> CodecStore | DualWriteStore:
    """The body store the running system should use.

    Normally ``open_store(settings.resolved_kv_url())``. While moving to a new backend, setting
    ``kv_old_url`` (env ``EVENTPIPE_KV_OLD_URL``) returns a :class:`DualWriteStore` that writes
    both and reads the new store first, then the old one.
    """
    new = open_store(settings.resolved_kv_url())
    old_url = settings.kv_old_url
    if not old_url or redact_url(old_url) == redact_url(new.url):
        return new
    try:
        old = open_store(old_url)
    except BaseException:
        new.close()
        raise
    return DualWriteStore(new, old)


__all__ = [
    "CodecStore",
    "DualWriteStore",
    "KVBadKey",
    "KVBadURL",
    "KVCorrupt",
    "KVError",
    "KVUnavailable",
    "KeyValueStore",
    "ENTRY_POINT_GROUP",
    "backends",
    "check_key",
    "open_configured_store",
    "open_raw_store",
    "open_store",
    "redact_url",
]
