"""The deployment's RabbitMQ nodes as ops sees them, and which of their queues are eventpipe's.

Physical names carry the deployment prefix (``Topology``); a name is a work queue unless it is a
dead-letter queue (``….dlq``) or a delay holding queue (``….delay.<ms>``). Logical queue names may
themselves contain dots (``events.save``), so the suffixes are matched exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pika

from eventpipe.errors import EventpipeError
from eventpipe.queues.management import BrokerNode, broker_nodes, management_urls_for
from eventpipe.queues.topology import Topology

_DELAY_RE = re.compile(r"^(?P<logical>.+)\.delay\.(?P<ms>\d+)$")


class OpsError(EventpipeError, RuntimeError):
    """An ops command cannot proceed; the message says why and what to do."""


@dataclass(frozen=True)
class QueueKind:
    kind: str  # work | dlq | delay | other
    logical: str
    delay_ms: int | None = None


def classify(topology: Topology, physical: str) -> QueueKind:
    """What an eventpipe queue is, from its physical name (``other`` when not ours)."""
    if not topology.owns(physical):
        return QueueKind("other", physical)
    rest = topology.logical(physical)
    if rest.endswith(".dlq"):
        return QueueKind("dlq", rest[: -len(".dlq")])
    m = _DELAY_RE.match(rest)
    if m:
        return QueueKind("delay", m.group("logical"), int(m.group("ms")))
    if rest == "heartbeats":
        return QueueKind("other", rest)
    return QueueKind("work", rest)


def nodes_for(settings: Any) -> list[BrokerNode]:
    """Every configured node with its management URL; an error naming the fix when none."""
    amqp = settings.amqp_urls
    if not amqp:
        raise OpsError(
            "no RabbitMQ nodes configured (embedded mode): set EVENTPIPE_BROKER_URLS=amqp://user:pass@host:5672,... "
            "to use this command"
        )
    try:
        return broker_nodes(amqp, management_urls_for(settings))
    except ValueError as exc:
        raise OpsError(str(exc)) from None


def find_node(nodes: list[BrokerNode], name: str) -> BrokerNode:
    for node in nodes:
        if node.host_port == name:
            return node
    raise OpsError(f"node {name!r} is not configured; configured nodes: {', '.join(n.host_port for n in nodes)}")


def connect(url: str, timeout: float = 5.0) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def ready_count(conn: pika.BlockingConnection, queue: str) -> int | None:
    """Exact ready count by passive declare on a throwaway channel; None when the queue is missing."""
    ch = conn.channel()
    try:
        return int(ch.queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if ch.is_open:
            ch.close()
