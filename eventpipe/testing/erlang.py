"""The Erlang side of test-owned RabbitMQ nodes: finding the real scripts and ``epmd``, a private
``epmd`` per cluster, and a watchdog that kills every node if the test process dies first.

Split from :mod:`eventpipe.testing.rabbitmq` (the nodes and the cluster) to keep each module small.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eventpipe.testing.ports import port_open as _port_open


class RabbitNodeError(RuntimeError):
    """A test node could not be started; the message carries the tail of its log."""


def find_sbin() -> Path:
    """Folder holding the *real* rabbitmq-server script (not the user-switching wrapper)."""
    explicit = os.environ.get("EVENTPIPE_TEST_RABBITMQ_SBIN")
    candidates = [explicit] if explicit else []
    candidates += sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin"), reverse=True)
    candidates += ["/usr/lib/rabbitmq/bin"]
    for cand in candidates:
        if cand and (Path(cand) / "rabbitmq-server").is_file():
            return Path(cand)
    raise RabbitNodeError(
        "no rabbitmq-server script found under /usr/lib/rabbitmq; install the Debian package "
        "'rabbitmq-server' or set EVENTPIPE_TEST_RABBITMQ_SBIN to its lib/rabbitmq_server-*/sbin folder"
    )


def find_epmd() -> str:
    found = shutil.which("epmd") or next(iter(sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"))), None)
    if not found:
        raise RabbitNodeError("no epmd found; install erlang-base (comes with rabbitmq-server)")
    return found


def rabbitmq_available() -> bool:
    """True when this host can start test nodes (the RabbitMQ package and epmd are installed)."""
    try:
        find_sbin()
        find_epmd()
        return True
    except RabbitNodeError:
        return False


def _kill_group(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


_WATCHDOG = r"""
import os, shutil, sys, time
parent, registry, remove = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while os.path.exists(registry):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(1)
else:
    sys.exit(0)  # registry removed: the owner closed the cluster normally
for line in open(registry).read().split():
    try:
        os.killpg(int(line), 9)
    except (ProcessLookupError, ValueError, PermissionError):
        pass
os.unlink(registry)
if remove:
    time.sleep(1)
    shutil.rmtree(remove, ignore_errors=True)
"""


class _Watchdog:
    """Kills every registered process group if the test process dies without tearing down
    (SIGKILL, OOM, a CI timeout): test nodes must never outlive the run that started them."""

    def __init__(self, registry: Path, remove_dir: Path | None) -> None:
        self.registry = registry
        registry.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(registry), str(remove_dir or "")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def register(self, pgid: int) -> None:
        with open(self.registry, "a") as f:
            f.write(f"{pgid}\n")

    def close(self) -> None:
        try:
            self.registry.unlink()
        except FileNotFoundError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


@dataclass
class Epmd:
    """A private epmd on its own loopback port, so test nodes never register with the system's."""

    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [find_epmd(), "-address", "127.0.0.1", "-port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RabbitNodeError(f"epmd did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        _kill_group(self.proc, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
