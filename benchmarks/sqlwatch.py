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


class RowWatcher:
    """Polls the events table every ``interval`` s for new rows and records, per event, the wall
    time it was first seen minus its ``received_at`` (the time the submit call started): latency
    from submit to saved, +0..interval of polling resolution.

    Ids are assigned at insert but commit out of order (several processes and threads, batches),
    so a row can appear below the highest id already seen. Each poll reads the rows above that id
    and re-reads the *gaps* below it (ids not seen yet) until they are ``gap_ttl`` s old: a rolled
    back insert or an ``ON CONFLICT DO NOTHING`` leaves a gap for good. This costs one cheap query
    per tick however fast rows arrive, instead of re-reading a window of rows."""

    def __init__(self, url: str, interval: float = 0.05, gap_ttl: float = 15.0) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.interval = interval
        self.gap_ttl = gap_ttl
        self.latencies: list[float] = []
        self.last_seen_wall = 0.0
        self.first_seen_wall = 0.0
        self._max_id = 0
        self._gaps: dict[int, float] = {}  # id -> monotonic time it was first known missing
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
                    if self._gaps:
                        rows += conn.execute(q_gaps, {"ids": list(self._gaps)}).all()
                    rows += conn.execute(q_new, {"last": self._max_id}).all()
            except Exception as exc:  # noqa: BLE001 - a locked SQLite read: try again next tick
                log(f"row watcher: {type(exc).__name__}: {exc}"[:200])
            self._record(rows, time.time(), time.monotonic())
            self._stop.wait(self.interval)

    def _record(self, rows: list[Any], now: float, mono: float) -> None:
        top = self._max_id
        for row_id, received_at in sorted(rows, key=lambda r: r[0]):
            if row_id <= self._max_id and self._gaps.pop(row_id, None) is None:
                continue  # already seen
            if isinstance(received_at, str):
                received_at = datetime.fromisoformat(received_at)
            self.latencies.append(now - received_at.replace(tzinfo=UTC).timestamp())
            if row_id > top:
                if row_id - top < 100_000:  # a sequence jump that large is no commit race
                    self._gaps.update(dict.fromkeys(range(top + 1, row_id), mono))
                top = row_id
        self._max_id = top
        if rows:
            self.last_seen_wall = now
            self.first_seen_wall = self.first_seen_wall or now
        expired = [i for i, t in self._gaps.items() if mono - t > self.gap_ttl]
        for i in expired:
            del self._gaps[i]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()
