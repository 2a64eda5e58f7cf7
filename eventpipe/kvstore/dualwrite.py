"""Dual writing while a migration runs: write both stores, read the new one first.

The switch-over recipe: point ``EVENTPIPE_KV_URL`` at the new store and ``EVENTPIPE_KV_OLD_URL``
at the old one (workers now write both and read new-then-old, so nothing written during the copy
is missed), run ``eventpipe kv migrate --from OLD --to NEW --verify``, then unset
``EVENTPIPE_KV_OLD_URL``. Writes go to the new store first: if the old store then fails the call
raises (the caller retries; puts are idempotent), so the two never silently diverge.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping

from .base import KeyValueStore


class DualWriteStore:
    """Same protocol as any store. Reads fall back to ``old`` only for keys ``new`` lacks."""

    def __init__(self, new: KeyValueStore, old: KeyValueStore) -> None:
        self.new = new
        self.old = old
        self.url = new.url

    def get(self, key: str) -> bytes | None:
        value = self.new.get(key)
        return value if value is not None else self.old.get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(keys)
        found = self.new.get_many(wanted)
        rest = [k for k in wanted if k not in found]
        if rest:
            found.update(self.old.get_many(rest))
        return found

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.new.put(key, value, ttl=ttl)
        self.old.put(key, value, ttl=ttl)

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        self.new.put_many(items, ttl=ttl)
        self.old.put_many(items, ttl=ttl)

    def delete(self, key: str) -> None:
        # old first: a crash in between leaves the body in new, where reads look first anyway
        self.old.delete(key)
        self.new.delete(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        self.old.delete_many(wanted)
        self.new.delete_many(wanted)

    def exists(self, key: str) -> bool:
        return self.new.exists(key) or self.old.exists(key)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Union of both stores' keys, each once, in sorted order."""
        last: str | None = None
        for key in heapq.merge(sorted(self.new.keys(prefix)), sorted(self.old.keys(prefix))):
            if key != last:
                yield key
                last = key

    def get_raw(self, key: str) -> bytes | None:
        """The stored frame (for codec-wrapped stores), new first."""
        for store in (self.new, self.old):
            getter = getattr(store, "get_raw", None)
            value = getter(key) if getter else store.get(key)
            if value is not None:
                return value
        return None

    def close(self) -> None:
        try:
            self.new.close()
        finally:
            self.old.close()
