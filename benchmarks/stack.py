"""One throwaway eventpipe deployment for a benchmark row: a fresh Postgres database (migrated),
a home folder (the embedded default body store lives there), a unique queue prefix on the
machine's RabbitMQ, and the environment the `eventpipe` CLI reads. ``close()`` stops what it
started, deletes every queue and exchange with the prefix and drops the database.

It talks to eventpipe only through surfaces that survive a rewrite of its core: the CLI
(`eventpipe worker`, `eventpipe ingest serve`, `eventpipe projects add --json`), EVENTPIPE_*
settings, ``Database.upgrade()`` and the ``events`` table.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    AMQP_URL,
    VENV_BIN,
    DepthProbe,
    bench_env,
    log,
    spawn,
    stop,
    unique,
)
from benchmarks.sqlwatch import create_pg_db, drop_pg_db


def rabbitmq_names(kind: str, prefix: str) -> list[str]:
    """Queues or exchanges (``kind``) on the machine's node whose name starts with ``prefix``
    (`rabbitmqctl`; the management plugin is not always enabled). Empty if it cannot be asked."""
    try:
        r = subprocess.run(["rabbitmqctl", f"list_{kind}", "-q", "--no-table-headers", "name"],
                           check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [n.strip() for n in r.stdout.splitlines() if n.strip().startswith(prefix)]


def delete_prefixed(prefix: str, known: Sequence[str] = ()) -> None:
    """Delete ``known`` queues and whatever else the broker has under ``prefix``."""
    probe = DepthProbe()
    try:
        probe.delete(*dict.fromkeys([*known, *rabbitmq_names("queues", prefix)]))
        probe.delete_exchange(*rabbitmq_names("exchanges", prefix))
    finally:
        probe.close()


def catalogue_queues() -> list[str]:
    """Logical queue names of eventpipe's catalogue (as the worker will declare them)."""
    from eventpipe.tasks.api import load_catalogue

    return list(load_catalogue().queues())


class Stack:
    def __init__(self, workdir: Path, name: str, *, postgres: bool = True, **extra_env: str) -> None:
        self.prefix = unique(f"bench-{name}-") + "."
        self.home = workdir / f"home-{self.prefix.strip('.')}"
        self.home.mkdir(parents=True)
        self.workdir = workdir
        self.name = name
        self.pg_handle: Any = None
        if postgres:
            self.db_url, self.pg_handle = create_pg_db()
        else:
            self.db_url = f"sqlite:///{self.home / 'metadata.sqlite3'}"
        self.env = bench_env(
            EVENTPIPE_BROKER_URL=AMQP_URL, EVENTPIPE_QUEUE_PREFIX=self.prefix, EVENTPIPE_HOME=str(self.home),
            EVENTPIPE_DATABASE_URL=self.db_url, **extra_env,
        )
        self.procs: list[subprocess.Popen[Any]] = []
        from eventpipe.metadata.db import Database

        db = Database(self.db_url)
        db.upgrade()
        db.dispose()

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def queue(self, logical: str) -> str:
        from eventpipe.queues.topology import Topology

        return Topology(self.prefix).queue(logical)

    def cli(self, *args: str, timeout: float = 120) -> str:
        r = subprocess.run([str(VENV_BIN / "eventpipe"), *args], env=self.env, check=False, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"eventpipe {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r.stdout

    def add_project(self, project_id: int, name: str) -> str:
        """`eventpipe projects add ID NAME --json`; returns the ingest key."""
        return str(json.loads(self.cli("projects", "add", str(project_id), name, "--json"))["ingest_key"])

    def add_demo_projects(self) -> list[int]:
        """The demo generator's projects, made in-process (three CLI start-ups would cost more
        CPU on a shared machine than the rows they prepare)."""
        from eventpipe.metadata.db import Database
        from eventpipe.metadata.queries import ensure_project
        from eventpipe.pipeline.demo import DEMO_PROJECTS

        db = Database(self.db_url)
        try:
            for pid, (pname, _platform) in DEMO_PROJECTS.items():
                ensure_project(db, pid, pname)
        finally:
            db.dispose()
        return list(DEMO_PROJECTS)

    def kv_url(self) -> str:
        """The body store the eventpipe CLI uses with this environment (its embedded default)."""
        from eventpipe.config import Settings

        return Settings(home=self.home).resolved_kv_url()

    def start(self, *args: str, cmd: list[str] | None = None) -> subprocess.Popen[Any]:
        proc = spawn(cmd or [str(VENV_BIN / "eventpipe"), *args], self.env, self.log_path)
        self.procs.append(proc)
        return proc

    def start_workers(self, processes: int = 2, *extra: str) -> subprocess.Popen[Any]:
        proc = self.start("worker", "--processes", str(processes), *extra)
        self.wait_consumers(processes, [proc])
        return proc

    def wait_consumers(self, n: int, procs: list[subprocess.Popen[Any]], timeout: float = 120) -> None:
        """Until every ``events*`` queue of the catalogue has ``n`` consumers (each worker process
        consumes every queue by default), then one more second for the rest to settle."""
        names = [self.queue(q) for q in catalogue_queues() if q.startswith("events")]
        probe = DepthProbe()
        try:
            for q in names:
                try:
                    probe.wait_consumers(q, n, timeout=timeout, procs=procs)
                except RuntimeError as exc:
                    if any(p.poll() is not None for p in procs):
                        raise RuntimeError(f"{exc}; see {self.log_path}") from None
                    log(f"{self.name}: {exc} (going on: the queue may be consumed elsewhere now)")
        finally:
            probe.close()
        time.sleep(1.0)

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{self.name}: {p.args[:3]} exited with {p.returncode}; see {self.log_path}")

    def close(self) -> None:
        try:
            for p in self.procs:
                stop(p)
            known = [self.queue(q) for q in catalogue_queues()]
            delete_prefixed(self.prefix, known)
        finally:
            if self.pg_handle is not None:
                drop_pg_db(self.pg_handle)
                self.pg_handle = None
