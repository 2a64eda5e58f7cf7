"""Loopback ports for throwaway servers: one ``free_port`` for every launcher and test.

Why one function: the servers of this package (RabbitMQ nodes, SeaweedFS, a Redis Cluster, a
Postgres) and the tests that need "a port nobody listens on" all ask the OS for a free port; a
port handed out once is never handed out again by this process, so two launchers started one
after the other cannot pick the same port before either has bound it.
"""

from __future__ import annotations

import socket
import threading
import time

_lock = threading.Lock()
_handed_out: set[int] = set()


def is_free(port: int) -> bool:
    """True when nothing on 127.0.0.1 holds ``port`` now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_offset: int = 0) -> int:
    """A loopback port that is free now and was never returned before by this process.

    ``with_offset``: also require ``port + with_offset`` to be free (SeaweedFS listens on its port
    and on port + 10000 for gRPC; Redis Cluster on port + 10000 for its bus).
    """
    with _lock:
        for _ in range(200):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port in _handed_out:
                continue
            if with_offset and not (port + with_offset < 65536 and is_free(port + with_offset)):
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, deadline: float) -> bool:
    """Wait until ``port`` accepts connections or ``deadline`` (``time.monotonic()``) passes."""
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.1)
    return False
