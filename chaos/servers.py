"""The servers and eventpipe processes a chaos run starts on loopback, and stops at the end.

Postgres and the RabbitMQ nodes come from :mod:`eventpipe.testing` (``postgres.PgServer`` and
``rabbitmq.RabbitCluster``): test-owned servers on their own ports, never the
machine's own. eventpipe itself runs as subprocesses through its CLI, as an operator runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from eventpipe.testing.ports import free_port
from eventpipe.testing.ports import port_open as _port_open
from eventpipe.testing.postgres import PgServer
from eventpipe.testing.rabbitmq import RabbitCluster, RabbitNode, find_sbin

from .proxy import BlackholeProxy

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Deployment:
    """One Postgres, ``nodes`` RabbitMQ nodes and the environment eventpipe processes share."""

    base: Path
    nodes: int = 3
    pg: PgServer | None = None
    cluster: RabbitCluster | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    proxy: BlackholeProxy | None = None  # the last node is reached through it (R5's partition)
    redis: subprocess.Popen[bytes] | None = None  # the body store (R4 makes it unreachable)
    redis_port: int = 0

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.pg = PgServer(self.base / "pg")
        self.pg.init()
        self.pg.start()
        self.pg.wait_ready()
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while not _port_open(self.redis_port):
            if time.monotonic() > deadline or self.redis.poll() is not None:
                raise RuntimeError("redis-server did not start (Debian package redis-server)")
            time.sleep(0.2)
        self.cluster = RabbitCluster.start_new(self.nodes)
        if self.nodes > 1:
            self.proxy = BlackholeProxy(self.rabbit[-1].amqp_port)

    def amqp_port(self, node: RabbitNode) -> int:
        """The port eventpipe (clients and federation peers) uses for ``node``."""
        if self.proxy is not None and node is self.rabbit[-1]:
            return self.proxy.port
        return node.amqp_port

    @property
    def rabbit(self) -> list[RabbitNode]:
        assert self.cluster is not None
        return list(self.cluster.nodes)

    def env(self, **extra: str) -> dict[str, str]:
        assert self.pg is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
        env.update({
            "PYTHONPATH": str(REPO),
            "EVENTPIPE_HOME": str(self.base / "home"),
            "EVENTPIPE_DATABASE_URL": self.pg.url,
            "EVENTPIPE_KV_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            # as operators write them: a trailing slash, no vhost (the canonical form is eventpipe's job)
            "EVENTPIPE_BROKER_URLS": ",".join(f"amqp://guest:guest@127.0.0.1:{self.amqp_port(n)}/" for n in self.rabbit),
            "EVENTPIPE_MANAGEMENT_URLS": ",".join(n.management_url for n in self.rabbit),
            "EVENTPIPE_QUEUE_PREFIX": "chaos.",
            "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "5",
            "EVENTPIPE_MIN_BACKOFF_MS": "200",
            "EVENTPIPE_MAX_BACKOFF_MS": "2000",
            "EVENTPIPE_LOG_LEVEL": "WARNING",
        })
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=self.env(), cwd=self.base,
                              capture_output=True, text=True, timeout=timeout)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A long-running eventpipe command (own process group), its output in ``<name>.log``;
        ``env`` replaces the deployment's environment (default :meth:`env`)."""
        with open(self.base / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "eventpipe.cli", *args], env=env or self.env(), cwd=self.base,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def ingest(self) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = self.spawn("ingest", "ingest", "serve", "--port", str(port), "--rate", "100000")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ingest exited: {(self.base / 'ingest.log').read_text()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("ingest did not answer /healthz within 60 s")

    def project(self, project_id: int) -> str:
        res = self.cli("projects", "add", str(project_id), f"chaos-{project_id}", "--json")
        if res.returncode != 0:
            raise RuntimeError(f"projects add failed: {res.stderr[-2000:]}")
        return str(json.loads(res.stdout)["ingest_key"])

    def ctl(self, node: RabbitNode, *args: str) -> str:
        """rabbitmqctl against a test node (the real script, with the node's environment)."""
        env = node._write_files()  # noqa: SLF001 - the fixture's one place for a node's environment
        res = subprocess.run([str(find_sbin() / "rabbitmqctl"), "-n", node.nodename, *args], env=env,
                             capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {res.stderr or res.stdout}")
        return res.stdout

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def close(self) -> None:
        for proc in self.procs:
            try:
                self.stop(proc, signal.SIGKILL, 10)
            except Exception:  # noqa: BLE001, S110 - teardown reaches everything
                pass
        if self.proxy is not None:
            self.proxy.close()
        if self.redis is not None:
            os.kill(self.redis.pid, signal.SIGCONT)  # in case a scenario left it stopped
            self.redis.kill()
            self.redis.wait(10)
        if self.cluster is not None:
            self.cluster.close()
        if self.pg is not None:
            self.pg.stop()


def worker_children(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The worker processes of an ``eventpipe worker`` supervisor (not the resource tracker)."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=False)
    except psutil.NoSuchProcess:
        return []
    out = []
    for kid in kids:
        try:
            if "resource_tracker" not in " ".join(kid.cmdline()):
                out.append(kid)
        except psutil.Error:
            continue
    return out


__all__ = ["Deployment", "REPO", "free_port", "worker_children"]
