"""Filesystem backend: one file per key under a root folder, written atomically.

Writes go to a temporary file in the same folder and are renamed into place, so a reader never
sees half a body and a crash leaves either the old or the new body. TTL is kept in a sidecar-free
way: the expiry is stored as the file's mtime in the future, checked on read.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import BatchFallbackMixin, KVUnavailable, check_key

_NO_EXPIRY = 0.0


class FilesystemStore(BatchFallbackMixin):
    def __init__(self, url: str, *, fsync: bool = False) -> None:
        parsed = urlparse(url)
        self.url = url
        self.root = Path(unquote(parsed.path))
        self.fsync = fsync or "fsync=1" in (parsed.query or "")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KVUnavailable(f"{url}: cannot create the store folder ({exc})") from None
        self._made: set[Path] = set()
        self._root_str = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes | None:
        # a str path, not a Path: the read is ~20 us and Path arithmetic was a visible part of it
        path = os.path.join(self._root_str, check_key(key))
        try:
            with open(path, "rb") as fh:
                expires = os.fstat(fh.fileno()).st_mtime
                if expires > 1e9 * 3 and expires - 1e9 * 3 <= time.time():  # see _expiry_mtime
                    return None
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KVUnavailable(f"{self.url}: read of {key!r} failed ({exc})") from None

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        path = self._path(key)
        parent = path.parent
        tmp = parent / f".{path.name}.{os.getpid()}.{id(value)}.tmp"
        try:
            if parent not in self._made:
                parent.mkdir(parents=True, exist_ok=True)
                self._made.add(parent)
            with open(tmp, "wb") as fh:
                fh.write(value)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            if ttl:
                mtime = _expiry_mtime(time.time() + ttl)
                os.utime(tmp, (mtime, mtime))
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise KVUnavailable(f"{self.url}: write of {key!r} failed ({exc})") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise KVUnavailable(f"{self.url}: delete of {key!r} failed ({exc})") from None

    def exists(self, key: str) -> bool:
        return self.get(key) is not None if self._path(key).exists() else False

    def keys(self, prefix: str = "") -> Iterator[str]:
        for dirpath, _dirs, files in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            for name in sorted(files):
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key

    def close(self) -> None:
        pass


def _expiry_mtime(expires_at: float) -> float:
    """Encode an expiry as an mtime far in the future (offset 3e9 s) so it cannot be confused
    with a real modification time; files without TTL keep their ordinary mtime."""
    return expires_at + 1e9 * 3
