"""Ops tests: three test-owned RabbitMQ nodes (with management API), a unique queue prefix per
test, worker subprocesses. The machine's own node (no management API) is never used here."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from eventpipe.queues.declare import on_fresh_channel

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fixtures.rabbitmq_nodes import make_rabbit_nodes_fixture
from tests.support.workers import start_worker  # noqa: F401 - fixture

rabbit_nodes = make_rabbit_nodes_fixture(3, name="rabbit_nodes")

TASK_MODULES = "tests.ops.ops_tasks"


def delete_prefixed(nodes: Any, prefix: str) -> None:
    """Delete every queue of this test's prefix on every node (shovels first)."""
    import httpx

    for node in nodes:
        if not node.running:
            continue
        try:
            r = httpx.get(f"http://127.0.0.1:{node.mgmt_port}/api/queues/%2F", auth=("guest", "guest"), timeout=10)
            names = [q["name"] for q in r.json() if q["name"].startswith(prefix)]
            for sh in httpx.get(f"http://127.0.0.1:{node.mgmt_port}/api/parameters/shovel/%2F", auth=("guest", "guest"), timeout=10).json() or []:
                if prefix in sh["name"] or sh["name"].startswith("eventpipe-move-" + prefix):
                    httpx.delete(f"http://127.0.0.1:{node.mgmt_port}/api/parameters/shovel/%2F/{sh['name']}", auth=("guest", "guest"))
            conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
            try:
                for name in names:
                    on_fresh_channel(conn, lambda ch, name=name: ch.queue_delete(name))
            finally:
                conn.close()
        except Exception:  # noqa: BLE001, S110 - cleanup is best effort
            pass


@pytest.fixture
def ops_env(rabbit_nodes: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a runtime (this process) and worker subprocesses on the three nodes."""
    prefix = f"o{uuid.uuid4().hex[:8]}."
    nodes = list(rabbit_nodes.nodes) if hasattr(rabbit_nodes, "nodes") else list(rabbit_nodes)
    for node in nodes:
        if not node.running:
            node.start()
    env = {
        "EVENTPIPE_BROKER_URLS": ",".join(n.amqp_url for n in nodes),
        "EVENTPIPE_MANAGEMENT_URLS": ",".join(n.management_url for n in nodes),
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_TASK_MODULES": TASK_MODULES,
        "EVENTPIPE_MIN_BACKOFF_MS": "200",
        "EVENTPIPE_MAX_BACKOFF_MS": "1000",
        "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(_ROOT)
    from eventpipe.config import get_settings
    from eventpipe.metadata.flags import clear_cache

    get_settings.cache_clear()
    clear_cache()
    yield env
    from eventpipe.runtime import reset_runtime

    reset_runtime()
    delete_prefixed(nodes, prefix)


@pytest.fixture
def nodes(rabbit_nodes: Any) -> list[Any]:
    return list(rabbit_nodes.nodes) if hasattr(rabbit_nodes, "nodes") else list(rabbit_nodes)


def runtime() -> Any:
    from eventpipe.runtime import open_runtime

    return open_runtime()


def depth(amqp_url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if conn.is_open:
            conn.close()


def declare_everywhere(nodes: Any, rt: Any, logical: str = "testing") -> None:
    from eventpipe.queues.declare import declare_queues

    for n in nodes:
        declare_queues(n.amqp_url, rt.topology, [logical])


def publish_raw(amqp_url: str, queue: str, count: int, *, start: int = 0) -> None:
    """Fast bulk publish (no confirms; then wait until the queue holds them all) of small JSON
    bodies with message ids m<start>..m<start+count-1>."""
    import json
    import time

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        before = ch.queue_declare(queue, passive=True).method.message_count
        now = int(time.time())
        for i in range(start, start + count):
            body = json.dumps({"queue_name": queue, "actor_name": "opstest.record", "args": [], "kwargs": {"key": f"m{i}"},
                               "options": {}, "message_id": f"m{i}", "message_timestamp": int(time.time() * 1000)}).encode()
            ch.basic_publish("", queue, body, pika.BasicProperties(message_id=f"m{i}", delivery_mode=2, timestamp=now))
        deadline = time.monotonic() + 60
        while ch.queue_declare(queue, passive=True).method.message_count < before + count:
            assert time.monotonic() < deadline, f"{queue} did not reach {before + count} messages"
            conn.sleep(0.05)
    finally:
        conn.close()


def drain_ids(amqp_url: str, queue: str) -> list[str]:
    """Take every ready message (acked) and return their ids in order."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ids = []
    try:
        ch = conn.channel()
        while True:
            method, props, _body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            ids.append(props.message_id)
    except pika.exceptions.ChannelClosedByBroker:
        pass
    finally:
        if conn.is_open:
            conn.close()
    return ids
