"""Regression (issue: a trailing slash in EVENTPIPE_BROKER_URLS broke federation silently).

pika reads ``amqp://h:p/`` as the vhost ``/``; RabbitMQ's own URI parser, used by federation
upstreams and shovels, reads it as the *empty* vhost, so every link was in ``error: not_allowed``
while `federation setup` said success. Now every URL is canonicalized once and setup waits for
its links; a link that cannot come up makes setup exit 1 with the reason and the fix.
Run as users run it: the CLI as a subprocess, exit code and output checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=full, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def env_for(nodes: list[Any], prefix: str, tmp_path: Path) -> dict[str, str]:
    # exactly as an operator writes them: trailing slash, no vhost
    return {
        "EVENTPIPE_BROKER_URLS": ",".join(f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/" for n in nodes),
        "EVENTPIPE_MANAGEMENT_URLS": ",".join(n.management_url for n in nodes),
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
    }


def mgmt(node: Any, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"http://127.0.0.1:{node.mgmt_port}{path}", json=body, auth=("guest", "guest"), timeout=10)


def test_trailing_slash_urls_federate_and_links_run(rabbit_nodes: Any, tmp_path: Path) -> None:
    nodes = list(rabbit_nodes.nodes)
    for n in nodes:
        if not n.running:
            n.start()
    env = env_for(nodes, f"ts{uuid.uuid4().hex[:6]}.", tmp_path)
    try:
        res = run_cli(["federation", "setup", "--queue", "work", "--queue", "other", "--json"], env)
        assert res.returncode == 0, res.stdout + res.stderr
        out = json.loads(res.stdout)
        assert out["links_running"] == 12  # 3 nodes x 2 peers x 2 queues
        # what RabbitMQ stored: the canonical URI with the vhost spelled out
        ups = mgmt(nodes[0], "GET", "/api/parameters/federation-upstream/%2F").json()
        uris = {u["value"]["uri"] for u in ups if u["name"].startswith("eventpipe-" + env["EVENTPIPE_QUEUE_PREFIX"].strip("."))}
        assert uris == {f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/%2F" for n in nodes[1:]}
        links = mgmt(nodes[0], "GET", "/api/federation-links/%2F").json()
        ours = [link for link in links if link.get("queue", "").startswith(env["EVENTPIPE_QUEUE_PREFIX"])]
        assert len(ours) == 4 and all(link["status"] == "running" for link in ours), ours
        res = run_cli(["federation", "status"], env)
        assert res.returncode == 0, res.stdout + res.stderr
    finally:
        run_cli(["federation", "teardown"], env)


def _wait_no_connections(node: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not mgmt(node, "GET", "/api/connections").json():
            return
        time.sleep(0.5)


def test_setup_fails_with_reason_when_a_link_cannot_come_up(rabbit_nodes: Any, tmp_path: Path) -> None:
    """A deliberately broken upstream: node A accepts one connection only, so the links of B and
    C towards A cannot both connect. Setup must not report success."""
    nodes = list(rabbit_nodes.nodes)
    for n in nodes:
        if not n.running:
            n.start()
    a = nodes[0]
    env = env_for(nodes, f"br{uuid.uuid4().hex[:6]}.", tmp_path)
    _wait_no_connections(a)  # links of earlier tests closed
    assert mgmt(a, "PUT", "/api/vhost-limits/%2F/max-connections", {"value": 1}).status_code in (200, 201, 204)
    try:
        t0 = time.monotonic()
        res = run_cli(["federation", "setup", "--queue", "work", "--wait", "60"], env)
        elapsed = time.monotonic() - t0
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert "federation links" in out and f"127.0.0.1:{a.amqp_port}" in out, out
        assert "error" in out and "->" in out and "rerun `eventpipe federation setup`" in out, out
        assert "guest:guest" not in out
        print(f"\nsetup failed after {elapsed:.1f}s with:\n{res.stderr}")
    finally:
        mgmt(a, "DELETE", "/api/vhost-limits/%2F/max-connections")
        run_cli(["federation", "teardown"], env)
