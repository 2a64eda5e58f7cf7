"""Helpers for tests on the machine's RabbitMQ (the ``rabbit_env`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import os

import pika

MACHINE_AMQP = os.environ.get("EVENTPIPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


def delete_queues(url: str, prefix: str, logical: list[str]) -> None:
    """Delete the work, dead-letter and delay queues of ``logical`` under ``prefix``."""
    from eventpipe.queues.declare import on_fresh_channel
    from eventpipe.queues.topology import DELAY_BUCKETS_MS, Topology

    topo = Topology(prefix)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in logical:
            for name in [topo.queue(q), topo.dead_letter(q)] + [topo.delay(q, b) for b in DELAY_BUCKETS_MS]:
                on_fresh_channel(conn, lambda ch, name=name: ch.queue_delete(name))
    finally:
        conn.close()
