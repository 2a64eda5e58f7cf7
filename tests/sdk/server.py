"""A real `eventpipe ingest serve` in a subprocess (embedded mode: its workers run in-process),
with one project, for tests that drive it with real clients (sentry-sdk, `eventpipe send`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from eventpipe.testing.ports import free_port  # noqa: E402,F401 - the one free_port

REPO = Path(__file__).resolve().parents[2]




def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env["EVENTPIPE_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def eventpipe(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would (a subprocess)."""
    code = "import sys; from eventpipe.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, *args], env=cli_env(home), capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"eventpipe {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@dataclass
class Server:
    home: Path
    port: int
    project_id: int
    key: str
    log: Path

    @property
    def dsn(self) -> str:
        return f"http://{self.key}@127.0.0.1:{self.port}/{self.project_id}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if needle in line]

    def metric(self, name: str, **labels: str) -> float:
        """A sample from the server's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0

    def issues(self) -> list[dict[str, Any]]:
        return json.loads(eventpipe(self.home, "issues", "list", "--project", str(self.project_id), "--json").stdout)

    def stored_events(self) -> int:
        """Events saved so far (read from the shared SQLite metadata; no CLI start-up per poll)."""
        import sqlite3

        db = self.home / "metadata.sqlite3"
        candidates = [db] if db.exists() else sorted(self.home.glob("*.sqlite3"))
        for path in candidates:
            with sqlite3.connect(path) as conn:
                try:
                    return conn.execute("SELECT count(*) FROM events WHERE project_id = ?", (self.project_id,)).fetchone()[0]
                except sqlite3.OperationalError:
                    continue
        return 0

    def wait_for_events(self, n: int, timeout: float = 120.0) -> int:
        """Poll until at least ``n`` events are saved (a bound on waiting, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.stored_events()
            if count >= n:
                return count
            time.sleep(0.2)
        return self.stored_events()


@contextmanager
def ingest_server(tmp_path: Path, *, project_id: int = 1, rate: float = 1000.0, burst: float | None = None,
                  origins: tuple[str, ...] = ()) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    add = ["projects", "add", str(project_id), "sdk-test", "--json", *(a for o in origins for a in ("--origin", o))]
    key = json.loads(eventpipe(home, *add).stdout)["ingest_key"]
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    args = ["ingest", "serve", "--port", str(port), "--rate", str(rate)]
    if burst is not None:
        args += ["--burst", str(burst)]
    code = "import sys; from eventpipe.cli import main; sys.exit(main())"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], env=cli_env(home), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"ingest serve exited {proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"ingest serve did not answer on port {port}: {log.read_text()}")
            time.sleep(0.2)
        yield Server(home=home, port=port, project_id=project_id, key=key, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
