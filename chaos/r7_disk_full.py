"""R7: the disk of the embedded home fills up under load.

The suite mounts a small tmpfs (8 MB) as ``EVENTPIPE_HOME`` of an embedded ``eventpipe ingest
serve`` (SQLite metadata, SQLite bodies, in-process broker and workers), drives traffic, then fills
what is left of the disk with a file. Expected: clients get 503 with ``Retry-After`` (or another
answer with a reason), never a hang; the process neither crashes nor hangs; once the file is
removed and the process restarted, every event answered 200 has its row. Needs root (mount).
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import sqlalchemy as sa

from .load import Traffic, counter_excess
from .scenarios import Row, World
from .servers import REPO, free_port

SIZE = "16m"
FULL_S = 15.0  # seconds the disk stays full
AFTER_S = 10.0  # traffic after the space is freed
SETTLE_S = 60.0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    # default retry backoffs (1 s doubling, 5 retries: ~30 s), so work accepted before the disk
    # filled outlasts the 15 s it stays full
    env.update({"PYTHONPATH": str(REPO), "EVENTPIPE_HOME": str(home), "EVENTPIPE_LOG_LEVEL": "WARNING",
                "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "5"})
    return env


def _padded(rnd: random.Random, event_id: str) -> tuple[bytes, dict[str, str]]:
    pad = "".join(rnd.choice("abcdefghij ") for _ in range(500))
    return (b'{"event_id":"%s","message":"disk full %d","level":"error","platform":"python","extra":{"pad":"%s"}}'
            % (event_id.encode(), rnd.randrange(7), pad.encode())), {}


def _stored(engine: sa.Engine, project_id: int, ids: list[str]) -> Counter[str]:
    found: Counter[str] = Counter()
    try:
        with engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                q = sa.text("SELECT event_id, count(*) FROM events WHERE project_id = :p AND event_id IN :ids "
                            "GROUP BY event_id").bindparams(sa.bindparam("ids", expanding=True))
                for event_id, n in conn.execute(q, {"p": project_id, "ids": chunk}):
                    found[event_id] = int(n)
    except sa.exc.OperationalError:
        pass  # locked or being written: the next poll sees it
    return found


def _fill(path: Path) -> int:
    """Write ``path`` until the file system is full; the bytes written."""
    n = 0
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                try:  # the last partial block
                    n += f.write(block[:4096])
                except OSError:
                    pass
                return n


class _Ingest:
    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        port = free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eventpipe.cli", "ingest", "serve", "--port", str(port), "--rate", "100000"],
                env=_env(self.home), cwd=self.log.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded ingest exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("embedded ingest did not answer /healthz within 60 s")

    def stop(self) -> bool:
        """SIGTERM; True if it exited within 30 s (else it is killed: a hang)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            return False


def r7_disk_full(world: World) -> Row:
    row = Row("R7", f"disk of the embedded home ({SIZE} tmpfs) full for {FULL_S:.0f} s under load, "
                    "then freed and the process restarted")
    home = world.dep.base / "r7-home"
    home.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(home)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        row.notes.append(f"not run: cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
        return row
    ingest = _Ingest(home, world.dep.base / "r7-ingest.log")
    engine = sa.create_engine(f"sqlite:///{home / 'metadata.sqlite3'}")
    try:
        added = subprocess.run([sys.executable, "-m", "eventpipe.cli", "projects", "add", "1", "chaos-r7", "--json"],
                               env=_env(home), cwd=world.dep.base, capture_output=True, text=True, timeout=120, check=False)
        if added.returncode != 0:
            raise RuntimeError(f"projects add failed: {added.stdout[-500:]}{added.stderr[-1500:]}")
        key = str(json.loads(added.stdout)["ingest_key"])
        ingest.start()
        traffic = Traffic(ingest.url, 1, key, rate=world.rate, clients=8, tag="R7", body=_padded)
        filler = home / "filler"
        t0 = time.monotonic()
        traffic.start()
        try:
            time.sleep(3)
            filled = _fill(filler)
            full_at = time.monotonic()
            row.notes.append(f"disk filled at {full_at - t0:.1f} s ({filled // 1024} KiB of filler)")
            crashed_during = None
            while time.monotonic() < full_at + FULL_S:
                if ingest.proc is not None and ingest.proc.poll() is not None and crashed_during is None:
                    crashed_during = ingest.proc.returncode
                time.sleep(0.5)
            filler.unlink()
            healed = time.monotonic()
            time.sleep(AFTER_S)
        finally:
            traffic.stop()
        if crashed_during is not None:
            row.notes.append(f"ingest EXITED while the disk was full (code {crashed_during})")
            row.bad += 1
        during = Counter(str(s.status) for s in traffic.results if full_at <= s.at <= healed)
        row.notes.append("answers while full: " + ", ".join(f"{k} x{n}" for k, n in during.most_common()))
        accepted = sorted({s.event_id for s in traffic.accepted()})
        after = [s.event_id for s in traffic.accepted() if s.at >= healed]
        row.recover_s = None
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            if after and _stored(engine, 1, after[:50]):
                row.recover_s = time.monotonic() - healed
                break
            time.sleep(0.5)
        deadline = time.monotonic() + SETTLE_S
        while len(_stored(engine, 1, accepted)) < len(accepted) and time.monotonic() < deadline:
            time.sleep(1)
        before_restart = len(_stored(engine, 1, accepted))
        if not ingest.stop():
            row.notes.append("ingest did not exit within 30 s of SIGTERM (killed)")
            row.bad += 1
        ingest.start()
        deadline = time.monotonic() + SETTLE_S
        while len(_stored(engine, 1, accepted)) < len(accepted) and time.monotonic() < deadline:
            time.sleep(1)
        found = _stored(engine, 1, accepted)
        row.accepted = len(accepted)
        row.stored = sum(1 for e in accepted if found.get(e))
        row.lost = row.accepted - row.stored
        row.dup_rows = sum(n - 1 for n in found.values() if n > 1)
        row.dup_counts = counter_excess(engine, 1)
        row.backpressure, bad, kinds = traffic.client_errors()
        row.bad += bad
        row.requests = len(traffic.results)
        row.slowest_s, slow = traffic.slow(5.0)
        row.notes.append(f"{before_restart} of {len(accepted)} accepted events stored before the restart")
        if slow:
            row.notes.append(f"{slow} of {row.requests} answers took longer than 5 s")
        if kinds:
            row.notes.append("client errors: " + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()))
        ingest.stop()
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            os.killpg(ingest.proc.pid, signal.SIGKILL)
            ingest.proc.wait(10)
        engine.dispose()
        res = subprocess.run(["umount", str(home)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(home)], capture_output=True, text=True, check=False)
    return row
