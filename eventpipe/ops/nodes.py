"""The deployment's RabbitMQ nodes as ops sees them: every configured node with its management
URL, looked up by ``HOST:PORT``. Parsing, naming, connecting and depth checks live in
``eventpipe.queues.nodes``; which queues are eventpipe's is ``Topology.classify``."""

from __future__ import annotations

from typing import Any

from eventpipe.errors import EventpipeError
from eventpipe.queues.management import BrokerNode, broker_nodes, management_urls_for
from eventpipe.queues.nodes import NodeURLError, normalize_node_name


class OpsError(EventpipeError, RuntimeError):
    """An ops command cannot proceed; the message says why and what to do."""


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
    except (ValueError, NodeURLError) as exc:
        raise OpsError(str(exc)) from None


def find_node(nodes: list[BrokerNode], name: str) -> BrokerNode:
    """The node called ``name`` (``HOST:PORT``; a bare host means port 5672, a URL its node)."""
    wanted = normalize_node_name(name)
    for node in nodes:
        if node.host_port == wanted:
            return node
    raise OpsError(f"node {name!r} is not configured; configured nodes: {', '.join(n.host_port for n in nodes)}")
