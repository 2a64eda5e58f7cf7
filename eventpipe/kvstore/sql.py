"""Postgres backend: bodies in a ``bytea`` table, through psycopg 3 directly.

Why psycopg and not SQLAlchemy Core: the body path is a handful of fixed statements, and the
Core layer's per-call cost is measurable against a 0.2 ms round trip (see docs/benchmarks-kv.md).
Why ``unnest`` arrays: a batch of any size is one statement and one round trip.
Why ``STORAGE EXTERNAL``: bodies arrive already zstd-compressed by the codec, so TOAST's own
compression would only burn CPU.

URL: ``postgresql+psycopg://user:password@host:5432/dbname?table=eventpipe_kv`` (``postgresql://``
works too). Other query parameters (``sslmode``, ``connect_timeout``...) go to libpq unchanged;
``pool=N`` sets the connection pool size (default 8). The table is created if missing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import psycopg
from psycopg import sql

from .base import KVError, KVUnavailable, check_key, redact_url
from .sqlite import prefix_upper_bound

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
T = TypeVar("T")


class PostgresStore:
    """A small LIFO pool of autocommit connections; every call is one statement."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.table = query.pop("table", "eventpipe_kv")
        if not _IDENT.match(self.table):
            raise KVError(f"{redact_url(url)}: table name {self.table!r} must be a plain SQL identifier")
        self.pool_size = int(query.pop("pool", "8"))
        query.setdefault("connect_timeout", "5")
        self._conninfo = urlunparse(("postgresql", parsed.netloc, parsed.path, "", urlencode(query), ""))
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(self.pool_size)
        self._closed = False
        t = sql.Identifier(self.table)
        self._q_get = sql.SQL("SELECT value FROM {} WHERE key = %s AND (expires_at IS NULL OR expires_at > %s)").format(t)
        self._q_get_many = sql.SQL(
            "SELECT key, value FROM {} WHERE key = ANY(%s) AND (expires_at IS NULL OR expires_at > %s)"
        ).format(t)
        self._q_put = sql.SQL(
            "INSERT INTO {} (key, value, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
        ).format(t)
        self._q_put_many = sql.SQL(
            "INSERT INTO {} (key, value, expires_at) "
            "SELECT k, v, %s::float8 FROM unnest(%s::text[], %s::bytea[]) AS u(k, v) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
        ).format(t)
        self._q_del = sql.SQL("DELETE FROM {} WHERE key = %s").format(t)
        self._q_del_many = sql.SQL("DELETE FROM {} WHERE key = ANY(%s)").format(t)
        self._q_exists = sql.SQL(
            "SELECT 1 FROM {} WHERE key = %s AND (expires_at IS NULL OR expires_at > %s)"
        ).format(t)
        self._ensure_table()
        # Composed -> str once: psycopg would otherwise re-render every statement on every call
        for name in ("_q_get", "_q_get_many", "_q_put", "_q_put_many", "_q_del", "_q_del_many", "_q_exists"):
            setattr(self, name, self._run("prepare", lambda c, q=getattr(self, name): q.as_string(c)))

    # -- plumbing ------------------------------------------------------------------------------
    def _ensure_table(self) -> None:
        t = sql.Identifier(self.table)

        def create(conn: psycopg.Connection[Any]) -> None:
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value bytea NOT NULL, expires_at float8)"
            ).format(t))
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN value SET STORAGE EXTERNAL").format(t))

        try:
            self._run("create table", create)
        except KVError:
            raise
        except psycopg.errors.UniqueViolation:
            pass  # two processes created it at the same moment: it exists, which is all we need

    def _run(self, what: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Borrow a connection (LIFO, at most ``pool`` at once), run ``fn``, map errors.

        Plain list + semaphore rather than a context manager or queue.Queue: at ~100 us per
        round trip, the pool's own bookkeeping showed up in the adapter overhead.
        """
        if self._closed:
            raise KVError(f"{redact_url(self.url)}: store is closed")
        conn: psycopg.Connection[Any] | None = None
        self._slots.acquire()
        try:
            try:
                conn = self._idle.pop()
            except IndexError:
                conn = psycopg.connect(self._conninfo, autocommit=True)
            return fn(conn)
        except psycopg.OperationalError as exc:
            # refused, timed out, server restarting, too many connections: retry later
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KVUnavailable(f"{redact_url(self.url)}: {what} failed ({msg})") from None
        except psycopg.errors.UniqueViolation:
            raise
        except psycopg.DatabaseError as exc:
            raise KVError(f"{redact_url(self.url)}: {what} failed ({exc})") from None
        finally:
            if conn is not None:
                if conn.closed or conn.broken:
                    conn.close()  # dropped: the next call opens a fresh one
                else:
                    self._idle.append(conn)
            self._slots.release()

    # -- protocol ------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        check_key(key)
        row = self._run(f"read of {key!r}", lambda c: c.execute(self._q_get, (key, time.time())).fetchone())
        return None if row is None else bytes(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = [check_key(k) for k in keys]
        if not wanted:
            return {}
        rows = self._run("batch read", lambda c: c.execute(self._q_get_many, (wanted, time.time())).fetchall())
        return {k: bytes(v) for k, v in rows}

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        check_key(key)
        expires = time.time() + ttl if ttl else None
        self._run(f"write of {key!r}", lambda c: c.execute(self._q_put, (key, value, expires)))

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        keys = [check_key(k) for k in items]
        if not keys:
            return
        values = [bytes(v) for v in items.values()]
        expires = time.time() + ttl if ttl else None
        self._run("batch write", lambda c: c.execute(self._q_put_many, (expires, keys, values)))

    def delete(self, key: str) -> None:
        check_key(key)
        self._run(f"delete of {key!r}", lambda c: c.execute(self._q_del, (key,)))

    def delete_many(self, keys: Iterable[str]) -> None:
        wanted = [check_key(k) for k in keys]
        if wanted:
            self._run("batch delete", lambda c: c.execute(self._q_del_many, (wanted,)))

    def exists(self, key: str) -> bool:
        check_key(key)
        row = self._run(f"exists of {key!r}", lambda c: c.execute(self._q_exists, (key, time.time())).fetchone())
        return row is not None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keyset pages of 1,000 in key order (``COLLATE "C"`` so the range matches byte order)."""
        upper = prefix_upper_bound(prefix)
        t = sql.Identifier(self.table)
        last, first = prefix, True
        while True:
            cond = sql.SQL('key COLLATE "C" >= %s' if first else 'key COLLATE "C" > %s')
            params: list[object] = [last]
            if upper is not None:
                cond = sql.SQL("{} AND key COLLATE \"C\" < %s").format(cond)
                params.append(upper)
            params.append(time.time())
            q = sql.SQL(
                "SELECT key FROM {} WHERE {} AND (expires_at IS NULL OR expires_at > %s) "
                "ORDER BY key COLLATE \"C\" LIMIT 1000"
            ).format(t, cond)
            page = [r[0] for r in self._run("key listing", lambda c: c.execute(q, params).fetchall())]
            yield from page
            if len(page) < 1000:
                return
            last, first = page[-1], False

    def purge_expired(self) -> int:
        """Delete rows whose TTL has passed (reads already ignore them); returns how many."""
        q = sql.SQL("DELETE FROM {} WHERE expires_at IS NOT NULL AND expires_at <= %s").format(
            sql.Identifier(self.table))
        return self._run("purge", lambda c: c.execute(q, (time.time(),)).rowcount)

    def drop_table(self) -> None:
        """Remove the table and every body in it (tests, and operators retiring a store)."""
        q = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.table))
        self._run("drop table", lambda c: c.execute(q))

    def close(self) -> None:
        self._closed = True
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                return
