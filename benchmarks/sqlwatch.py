"""Postgres side of the pipeline benchmarks: throwaway databases, the postmaster's pid, and a
watcher that sees each event row appear (submit -> saved latency observed from outside, through
the ``events`` table's ``received_at``, so it needs no hook in eventpipe)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import psutil

from benchmarks.common import PG_ADMIN_URL, log, unique


def create_pg_db() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text

    name = unique("ep_bench_")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", (admin, name)


def drop_pg_db(handle: Any) -> None:
    from sqlalchemy import text

    admin, name = handle
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def postgres_pid() -> int | None:
    for p in psutil.process_iter(["pid", "name", "username", "ppid"]):
        if p.info["name"] == "postgres" and p.info["username"] == "postgres":
            try:
                if psutil.Process(p.info["ppid"]).name() != "postgres":
                    return p.pid  # the postmaster: its children are the backends
            except psutil.NoSuchProcess:
                continue
    return None


class NewRows:
    """Which rows of a table with increasing ids are new, when ids commit out of order.

    Ids are assigned at insert but commit out of order (several processes and threads, batches),
    so a row can appear below the highest id already seen. The caller reads the rows above
    :attr:`top` and re-reads the :attr:`gaps` below it (ids not seen yet) until they are ``ttl``
    seconds old: a rolled-back insert or an ``ON CONFLICT DO NOTHING`` leaves a gap for good."""

    def __init__(self, ttl: float = 15.0) -> None:
        self.ttl = ttl
        self.top = 0
        self.gaps: dict[int, float] = {}  # id -> monotonic time it was first known missing

    def fresh(self, rows: list[Any], mono: float) -> list[Any]:
        """The rows (id first) not returned before; updates the gaps."""
        out = []
        for row in sorted(rows, key=lambda r: r[0]):
            row_id = row[0]
            if row_id <= self.top:
                if self.gaps.pop(row_id, None) is None:
                    continue  # seen before
            elif row_id - self.top < 100_000:  # a sequence jump that large is no commit race
                self.gaps.update(dict.fromkeys(range(self.top + 1, row_id), mono))
            self.top = max(self.top, row_id)
            out.append(row)
        for i in [i for i, t in self.gaps.items() if mono - t > self.ttl]:
            del self.gaps[i]
        return out


class RowWatcher:
    """Polls the events table every ``interval`` s for new rows and records, per event, the wall
    time it was first seen minus its ``received_at`` (the time the submit call started): latency
    from submit to saved, +0..interval of polling resolution. One cheap query per tick however
    fast rows arrive (see :class:`NewRows`), instead of re-reading a window of rows."""

    def __init__(self, url: str, interval: float = 0.05, gap_ttl: float = 15.0) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.interval = interval
        self.latencies: list[float] = []
        self.last_seen_wall = 0.0
        self.first_seen_wall = 0.0
        self._rows = NewRows(gap_ttl)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="row-watcher")

    def start(self) -> RowWatcher:
        self._thread.start()
        return self

    @property
    def count(self) -> int:
        return len(self.latencies)

    def _loop(self) -> None:
        from sqlalchemy import bindparam, text

        q_new = text("SELECT id, received_at FROM events WHERE id > :last")
        q_gaps = text("SELECT id, received_at FROM events WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
        while not self._stop.is_set():
            rows: list[Any] = []
            try:
                with self.engine.connect() as conn:
                    if self._rows.gaps:
                        rows += conn.execute(q_gaps, {"ids": list(self._rows.gaps)}).all()
                    rows += conn.execute(q_new, {"last": self._rows.top}).all()
            except Exception as exc:  # noqa: BLE001 - a locked SQLite read: try again next tick
                log(f"row watcher: {type(exc).__name__}: {exc}"[:200])
            now = time.time()
            fresh = self._rows.fresh(rows, time.monotonic())
            for _id, received_at in fresh:
                if isinstance(received_at, str):
                    received_at = datetime.fromisoformat(received_at)
                self.latencies.append(now - received_at.replace(tzinfo=UTC).timestamp())
            if fresh:
                self.last_seen_wall = now
                self.first_seen_wall = self.first_seen_wall or now
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()
