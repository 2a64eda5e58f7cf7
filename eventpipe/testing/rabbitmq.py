"""Test-owned RabbitMQ nodes on loopback, started and killed by the tests themselves.

Why: federation, shovels and node failure can only be tested against several real, independent
brokers that a test may SIGKILL and restart. The machine's own RabbitMQ (127.0.0.1:5672) must not
be touched, so every node here gets its own ports, data and log folders under a temporary folder,
a shared ``.erlang.cookie`` and a private ``epmd`` on its own port.

The ``sbin`` wrappers switch user and ignore the environment, so the real scripts from the
package's ``lib/rabbitmq_server-*/sbin`` are called directly (override with
``EVENTPIPE_TEST_RABBITMQ_SBIN``).

Use without pytest::

    from eventpipe.testing.rabbitmq import RabbitCluster

    with RabbitCluster.start_new(3) as cluster:
        a, b, c = cluster.nodes
        a.kill(); a.start()

The project's own tests get a session-scoped cluster from the ``rabbit_nodes`` fixture in
``tests/conftest.py``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pika

from eventpipe.testing.erlang import (  # noqa: F401 - find_epmd, rabbitmq_available: part of this module's API
    Epmd,
    RabbitNodeError,
    _kill_group,
    _Watchdog,
    find_epmd,
    find_sbin,
    rabbitmq_available,
)
from eventpipe.testing.ports import free_port
from eventpipe.testing.ports import port_open as _port_open

PLUGINS = (
    "rabbitmq_management",
    "rabbitmq_federation",
    "rabbitmq_federation_management",
    "rabbitmq_shovel",
    "rabbitmq_shovel_management",
)
DEFAULT_START_TIMEOUT_S = 90.0


@dataclass
class RabbitNode:
    """One test-owned RabbitMQ node. Ports are fixed at creation so a restart keeps its URLs."""

    name: str
    base: Path
    home: Path
    epmd_port: int
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    mgmt_port: int = field(default_factory=free_port)
    user: str = "guest"
    password: str = "guest"
    proc: subprocess.Popen[bytes] | None = None
    last_start_seconds: float | None = None
    on_spawn: Callable[[int], None] | None = None  # the cluster's watchdog registers each group

    # --- addresses -------------------------------------------------------------------------
    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.amqp_port}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def management_url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.mgmt_port}"

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    # --- files -----------------------------------------------------------------------------
    def _write_files(self) -> dict[str, str]:
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        conf = self.base / "rabbitmq.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                    f"management.tcp.port = {self.mgmt_port}",
                    "management.tcp.ip = 127.0.0.1",
                    "vm_memory_high_watermark.relative = 0.15",
                    "collect_statistics_interval = 1000",
                    "log.console = false",
                    "log.file.level = info",
                    "",
                ]
            )
        )
        plugins = self.base / "enabled_plugins"
        plugins.write_text("[" + ",".join(PLUGINS) + "].\n")
        env_file = self.base / "rabbitmq-env.conf"
        env_file.write_text("")
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k != "NOTIFY_SOCKET"
        }
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_CONFIG_FILE=str(conf),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_CONF_ENV_FILE=str(env_file),
            RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    # --- lifecycle -------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the node's process without waiting (so several nodes boot in parallel)."""
        if self.running:
            return
        env = self._write_files()
        out = open(self.log_dir / "stdout.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [str(find_sbin() / "rabbitmq-server")],
                env=env, cwd=str(self.base), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                # own process group: kill() and teardown reach beam.smp and its helpers in one go
                start_new_session=True,
            )
        finally:
            out.close()
        self._spawned_at = time.monotonic()
        if self.on_spawn is not None:
            self.on_spawn(self.proc.pid)

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> float:
        """Wait until AMQP accepts a login and the management API answers; returns boot seconds."""
        deadline = time.monotonic() + timeout
        amqp_ok = mgmt_ok = False
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RabbitNodeError(f"node {self.name} exited during start:\n{self.log_tail()}")
            if not amqp_ok and _port_open(self.amqp_port):
                try:
                    params = pika.URLParameters(self.amqp_url)
                    params.socket_timeout = 2
                    pika.BlockingConnection(params).close()
                    amqp_ok = True
                except Exception:  # noqa: BLE001 - still booting
                    pass
            if amqp_ok and not mgmt_ok:
                try:
                    r = httpx.get(
                        f"http://127.0.0.1:{self.mgmt_port}/api/overview",
                        auth=(self.user, self.password), timeout=2,
                    )
                    mgmt_ok = r.status_code == 200
                except httpx.HTTPError:
                    pass
            if amqp_ok and mgmt_ok:
                self.last_start_seconds = time.monotonic() - self._spawned_at
                return self.last_start_seconds
            time.sleep(0.2)
        self.kill()
        raise RabbitNodeError(f"node {self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> float:
        """Start (same data folder as before) and wait until AMQP and management answer."""
        self.spawn()
        return self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL the whole node (beam.smp and helpers): a crash, no clean shutdown."""
        _kill_group(self.proc, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._wait_ports_closed()

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM); SIGKILL if it takes longer than ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        _kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc, signal.SIGKILL)  # the rest of the group (epmd is not in it)
        self._wait_ports_closed()

    def restart(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> float:
        self.stop()
        return self.start(timeout)

    def _wait_ports_closed(self, timeout: float = 10.0) -> None:
        # a restart on the same ports must not race the dying beam's sockets
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (_port_open(self.amqp_port) or _port_open(self.mgmt_port)):
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        chunks = []
        for path in sorted(self.log_dir.glob("*.log")):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log)"

    def __repr__(self) -> str:
        return f"RabbitNode({self.name}, amqp={self.host_port}, mgmt=127.0.0.1:{self.mgmt_port}, pid={self.pid})"


class RabbitCluster:
    """A group of independent (not clustered) test nodes sharing one cookie and one private epmd."""

    def __init__(self, base: Path | None = None, *, keep_dir: bool = False) -> None:
        self._own_dir = base is None
        self.base = Path(base or tempfile.mkdtemp(prefix="eventpipe-rabbit-"))
        self.keep_dir = keep_dir
        self.home = self.base / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        self.watchdog = _Watchdog(self.base / "pgids", self.base if self._own_dir and not keep_dir else None)
        self.epmd = Epmd(port=free_port())
        try:
            self.epmd.start()
        except BaseException:
            self.watchdog.close()
            raise
        if self.epmd.proc is not None:
            self.watchdog.register(self.epmd.proc.pid)
        self.nodes: list[RabbitNode] = []
        self.run_id = secrets.token_hex(3)

    @classmethod
    def start_new(cls, count: int, **kwargs: Any) -> RabbitCluster:
        cluster = cls(**kwargs)
        try:
            cluster.add_nodes(count)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def new_node(self) -> RabbitNode:
        """Create (not start) one more node with fresh ports and folders."""
        index = len(self.nodes)
        node = RabbitNode(
            name=f"ep{self.run_id}n{index}", base=self.base / f"node{index}", home=self.home,
            epmd_port=self.epmd.port, on_spawn=self.watchdog.register,
        )
        self.nodes.append(node)
        return node

    def add_nodes(self, count: int, timeout: float = DEFAULT_START_TIMEOUT_S) -> list[RabbitNode]:
        """Create and start ``count`` nodes in parallel; returns them once all answer."""
        new = [self.new_node() for _ in range(count)]
        for node in new:
            node.spawn()
        for node in new:
            node.wait_ready(timeout)
        return new

    @property
    def start_seconds(self) -> list[float | None]:
        return [n.last_start_seconds for n in self.nodes]

    def close(self) -> None:
        """Kill everything this cluster started; safe to call twice, never raises."""
        for node in self.nodes:
            try:
                node.kill()
            except Exception:  # noqa: BLE001 - teardown must reach every node
                pass
        try:
            self.epmd.kill()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.watchdog.close()
        except Exception:  # noqa: BLE001
            pass
        if self._own_dir and not self.keep_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[RabbitNode]:
        return iter(self.nodes)

    def __getitem__(self, i: int) -> RabbitNode:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)
