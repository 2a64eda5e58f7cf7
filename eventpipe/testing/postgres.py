"""A test-owned PostgreSQL server (initdb in a temp folder, own port, loopback), which a test
may stop and start again: the machine's own server is shared and must never be stopped."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from eventpipe.testing.ports import free_port, wait_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is needed (Debian package postgresql)")
    return found[-1]


class PgServer:
    """One throwaway server: ``init()`` once, then ``start()``/``stop()`` as often as a test needs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *cmd: str) -> None:
        # the server refuses to run as root; run it as the postgres account when we are root
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._as_postgres(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._as_postgres(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-t", "60",
            "-o", f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off", "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        try:
            self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def wait_ready(self, timeout: float = 30) -> None:
        if not wait_port(self.port, time.monotonic() + timeout):
            raise RuntimeError(f"test Postgres on {self.port} did not start")
