"""How eventpipe declares its queues on a RabbitMQ node. One function, used by the broker, by
`eventpipe federation setup` and by ops, so every process declares every queue identically
(RabbitMQ refuses a redeclaration with different arguments: PRECONDITION_FAILED).

Work and dead-letter queues are classic durable queues: on RabbitMQ 3.10, quorum
queues with federation produced duplicates and links that did not return after a restart
(docs/federation.md). Delay queues hold messages for a fixed TTL and dead-letter them back to
their work queue, so delayed work waits in the broker, never in a worker's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pika

from .nodes import connect

from .topology import Topology

T = TypeVar("T")

WORK_ARGS: dict[str, Any] = {"x-queue-type": "classic"}
DLQ_ARGS: dict[str, Any] = {"x-queue-type": "classic"}


def delay_args(topology: Topology, logical: str, delay_ms: int) -> dict[str, Any]:
    return {
        "x-queue-type": "classic",
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.queue(logical),
        # an idle holding queue disappears after a day without use
        "x-expires": max(delay_ms * 2, 86_400_000),
    }


def declare_work_queue(channel: Any, topology: Topology, logical: str) -> None:
    channel.queue_declare(topology.queue(logical), durable=True, arguments=WORK_ARGS)
    channel.queue_declare(topology.dead_letter(logical), durable=True, arguments=DLQ_ARGS)


def declare_delay_queue(channel: Any, topology: Topology, logical: str, delay_ms: int) -> str:
    name = topology.delay(logical, delay_ms)
    channel.queue_declare(name, durable=True, arguments=delay_args(topology, logical, delay_ms))
    return name


def on_fresh_channel(conn: Any, fn: Callable[[Any], T]) -> T | None:
    """Run one AMQP call on its own channel. A channel error (404 no such queue, 406 mismatch)
    closes only that channel, so it returns None instead of breaking the connection's other work."""
    channel = conn.channel()
    try:
        return fn(channel)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if channel.is_open:
            channel.close()


def declare_queues(amqp_url: str, topology: Topology, logical_queues: Iterable[str]) -> list[str]:
    """Declare every work queue and its dead-letter queue on one node; returns the names."""
    conn = connect(amqp_url, attempts=3, retry_delay=1.0)
    try:
        channel = conn.channel()
        names = []
        for logical in logical_queues:
            declare_work_queue(channel, topology, logical)
            names += [topology.queue(logical), topology.dead_letter(logical)]
        return names
    finally:
        conn.close()
