"""Helpers for the ops tests on three test-owned RabbitMQ nodes (the ``rabbit_nodes``, ``nodes``
and ``ops_env`` fixtures are in tests/conftest.py): queue depth, bulk publish, drain, cleanup."""

from __future__ import annotations

from typing import Any

import pika

from eventpipe.queues.declare import on_fresh_channel

TASK_MODULES = "tests.support.ops_tasks"


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
