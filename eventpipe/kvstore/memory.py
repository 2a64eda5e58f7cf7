"""In-memory backend: for unit tests and throwaway runs. Nothing survives the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from .base import BatchFallbackMixin, check_key


class MemoryStore(BatchFallbackMixin):
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        item = self._data.get(check_key(key))
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.time():
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        with self._lock:
            self._data[check_key(key)] = (bytes(value), time.time() + ttl if ttl else None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(check_key(key), None)

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        for key in sorted(list(self._data)):
            if key.startswith(prefix) and self.get(key) is not None:
                yield key

    def close(self) -> None:
        pass
