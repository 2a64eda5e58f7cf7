"""Regression: `ops drain --node` with shovels that cannot run used to poll for up to an hour,
silently. RabbitMQ restarts a broken shovel forever, so drain watches each shovel's state and
fails within seconds, naming the shovel's error. Run as a user runs it: a subprocess.

The broken shovel is real: the drained node refuses its user read access to the queues, so the
shovel (running on the destination) cannot consume there, while ops' own passive declares and
management calls still work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ops import declare_everywhere, depth, publish_raw, runtime

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def set_read(node: Any, pattern: str) -> None:
    r = httpx.put(f"http://127.0.0.1:{node.mgmt_port}/api/permissions/%2F/guest",
                  json={"configure": ".*", "write": ".*", "read": pattern}, auth=("guest", "guest"), timeout=10)
    assert r.status_code in (201, 204), r.text


def test_drain_with_a_broken_shovel_fails_fast_with_its_error(ops_env: dict[str, str], nodes: Any) -> None:
    rt = runtime()
    declare_everywhere(nodes, rt)
    a = nodes[0]
    q = rt.topology.queue("testing")
    publish_raw(a.amqp_url, q, 200)
    # the operator's URLs carry a trailing slash (the original report)
    env = {**os.environ, **ops_env, "PYTHONPATH": str(REPO),
           "EVENTPIPE_BROKER_URLS": ",".join(f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/" for n in nodes)}
    set_read(a, "^$")
    try:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "eventpipe.cli", "ops", "drain", "--node", a.host_port, "--yes"],
                             env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
        elapsed = time.monotonic() - t0
    finally:
        set_read(a, ".*")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "shovel" in out and "terminated" in out and "may read" in out, out
    assert "the node stays drained" in out, out
    assert depth(a.amqp_url, q) == 200  # nothing lost: everything still on A
    print(f"\ndrain failed after {elapsed:.1f}s (timeout 3600 s):\n{res.stderr[-1500:]}")
