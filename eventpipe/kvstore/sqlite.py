"""SQLite backend: bodies in their own WAL-mode database file (never the metadata database).

Why a separate file: body writes are large and frequent; sharing the metadata database would put
them behind the same single write lock as event rows and counters. Why WAL with
``synchronous=NORMAL``: readers never block the writer, and a commit costs no fsync (a power loss
can drop the last transactions, never corrupt the file), which suits bodies that are written once
and re-sent by at-least-once delivery if lost.

URL: ``sqlite:///absolute/path/bodies.sqlite3`` (the path part of the URL, as for ``file://``;
``sqlite:////abs/path`` also works). Options: ``?table=NAME`` (default ``kv``),
``?synchronous=FULL`` for an fsync per commit, ``?timeout=SECONDS`` busy timeout (default 60).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from .base import KVError, KVUnavailable, check_key, redact_url

_CHUNK = 500  # below SQLite's default limit of 999 bound parameters per statement
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (for range scans)."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SQLiteStore:
    """One table ``(key TEXT PRIMARY KEY, value BLOB, expires REAL)``; one connection per thread.

    sqlite3 connections must not be shared between threads mid-transaction, and a connection per
    thread lets WAL readers run in parallel with the writer.
    """

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url = url
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        raw_path = unquote(parsed.path)
        if parsed.netloc and parsed.netloc not in ("", "localhost"):
            raw_path = parsed.netloc + raw_path  # sqlite://relative/path form
        if not raw_path or raw_path == "/":
            raise KVError(f"{redact_url(url)}: no database path; use sqlite:///absolute/path/bodies.sqlite3")
        self.path = Path(raw_path)
        self.table = query.get("table", "kv")
        if not _IDENT.match(self.table):
            raise KVError(f"{redact_url(url)}: table name {self.table!r} must be a plain SQL identifier")
        self.synchronous = query.get("synchronous", "NORMAL").upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise KVError(f"{redact_url(url)}: synchronous must be OFF, NORMAL, FULL or EXTRA")
        self.timeout = float(query.get("timeout", "60"))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._in_cache: dict[int, str] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KVUnavailable(f"{redact_url(url)}: cannot create the folder for the database ({exc})") from None
        t = self.table
        self._sql_get = f"SELECT value FROM {t} WHERE key = ? AND (expires IS NULL OR expires > ?)"
        self._sql_put = f"INSERT OR REPLACE INTO {t} (key, value, expires) VALUES (?, ?, ?)"
        self._sql_del = f"DELETE FROM {t} WHERE key = ?"
        with self._errors("open"):
            self._conn().execute(
                f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires REAL)"
            )

    # -- connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    class _Errors:
        def __init__(self, store: SQLiteStore, what: str) -> None:
            self.store, self.what = store, what

        def __enter__(self) -> None:
            return None

        def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.ProgrammingError):
                # locked, disk full, I/O error, unreadable file: all "try again later / fix the disk"
                raise KVUnavailable(f"{redact_url(self.store.url)}: {self.what} failed ({exc})") from None
            return False

    def _unavailable(self, what: str, exc: sqlite3.Error) -> BaseException:
        if isinstance(exc, sqlite3.ProgrammingError):
            return exc
        return KVUnavailable(f"{redact_url(self.url)}: {what} failed ({exc})")

    def _errors(self, what: str) -> SQLiteStore._Errors:
        return SQLiteStore._Errors(self, what)

    # -- protocol ------------------------------------------------------------------------------
    # The single-key paths use a plain try/except (not the context manager) because at ~10 us per
    # read the manager's own cost was a measurable share of the call (docs/benchmarks-kv.md).
    def get(self, key: str) -> bytes | None:
        check_key(key)
        try:
            conn = self._local.conn
        except AttributeError:
            conn = self._conn()
        try:
            row = conn.execute(self._sql_get, (key, time.time())).fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(f"read of {key!r}", exc) from None
        return None if row is None else row[0]

    def _sql_in(self, n: int) -> str:
        sql = self._in_cache.get(n)
        if sql is None:
            marks = ",".join("?" * n)
            sql = f"SELECT key, value FROM {self.table} WHERE key IN ({marks}) AND (expires IS NULL OR expires > ?)"
            self._in_cache[n] = sql
        return sql

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = [check_key(k) for k in keys]
        out: dict[str, bytes] = {}
        now = time.time()
        with self._errors("batch read"):
            conn = self._conn()
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i:i + _CHUNK]
                out.update(conn.execute(self._sql_in(len(chunk)), (*chunk, now)).fetchall())
        return out

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        check_key(key)
        try:
            conn = self._local.conn
        except AttributeError:
            conn = self._conn()
        try:
            conn.execute(self._sql_put, (key, value, time.time() + ttl if ttl else None))
        except sqlite3.Error as exc:
            raise self._unavailable(f"write of {key!r}", exc) from None

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        expires = time.time() + ttl if ttl else None
        rows = [(check_key(k), v, expires) for k, v in items.items()]
        if not rows:
            return
        self._executemany("batch write", self._sql_put, rows)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._errors(f"delete of {key!r}"):
            self._conn().execute(self._sql_del, (key,))

    def delete_many(self, keys: Iterable[str]) -> None:
        rows = [(check_key(k),) for k in keys]
        if not rows:
            return
        self._executemany("batch delete", self._sql_del, rows)

    def _executemany(self, what: str, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for the whole batch: one WAL commit instead of one per row."""
        with self._errors(what):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (a full disk: SQLITE_FULL); a second
                # ROLLBACK would fail and replace the real reason with "no transaction is active".
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one to report
                raise

    def exists(self, key: str) -> bool:
        check_key(key)
        sql = f"SELECT 1 FROM {self.table} WHERE key = ? AND (expires IS NULL OR expires > ?)"
        with self._errors(f"exists of {key!r}"):
            return self._conn().execute(sql, (key, time.time())).fetchone() is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Pages of 1,000 keys in key order, so no read transaction stays open while the caller works."""
        upper = prefix_upper_bound(prefix)
        last = prefix
        first = True
        while True:
            cond = "key >= ?" if first else "key > ?"
            params: list[object] = [last]
            if upper is not None:
                cond += " AND key < ?"
                params.append(upper)
            sql = (
                f"SELECT key FROM {self.table} WHERE {cond} AND (expires IS NULL OR expires > ?) "
                "ORDER BY key LIMIT 1000"
            )
            params.append(time.time())
            with self._errors("key listing"):
                page = [r[0] for r in self._conn().execute(sql, params)]
            yield from page
            if len(page) < 1000:
                return
            last, first = page[-1], False

    def purge_expired(self) -> int:
        """Delete rows whose TTL has passed (reads already ignore them); returns how many."""
        with self._errors("purge"):
            cur = self._conn().execute(f"DELETE FROM {self.table} WHERE expires IS NOT NULL AND expires <= ?",
                                       (time.time(),))
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
