"""Waiting for federation links: ``federation setup`` does not report success until every link
runs, and names each broken one with RabbitMQ's reason and the fix.

A link in ``error`` for longer than :data:`ERROR_GRACE_S` (its reconnect delay is 1 s) is not a
blip: the wait fails early instead of running out its timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .federation import FederationError, StatusResult, status
from .topology import Topology

DEFAULT_LINK_WAIT_S = 30.0
ERROR_GRACE_S = 8.0  # a link in error this long (reconnect-delay is 1 s) is not a blip


def link_fix(error: str | None) -> str:
    """What to do about a link error, from RabbitMQ's reason."""
    text = (error or "").lower()
    if "not_allowed" in text or "access_refused" in text or "vhost" in text:
        return ("the peer refused the connection: the URL in EVENTPIPE_BROKER_URLS must name an existing vhost "
                "(amqp://user:pass@host:5672/%2F for the default '/') and a user with permissions on it there, "
                "and the peer must be below its connection limit (rabbitmqctl list_vhost_limits)")
    if "limit" in text:
        return "the peer refused the connection because of a connection limit: raise it (rabbitmqctl set_vhost_limits)"
    if "econnrefused" in text or "nxdomain" in text or "timeout" in text or "ehostunreach" in text:
        return ("the peer is not reachable from this node: every node must reach every other node's AMQP port "
                "under the host name in EVENTPIPE_BROKER_URLS (not 'localhost' across machines)")
    if "missing" in text or "no link" in text:
        return "no link was created: is rabbitmq_federation enabled on this node and the policy applied?"
    return "see the RabbitMQ log of that node for the link's error"


def describe_not_running(result: StatusResult) -> list[str]:
    """One line per (node, upstream, status, error) with its queue count and the fix."""
    lines: list[str] = []
    for node in result.nodes:
        if node.error:
            lines.append(f"{node.node}: {node.error}")
            continue
        groups: dict[tuple[str, str, str], list[str]] = {}
        for link in node.not_running():
            groups.setdefault((link.upstream, link.status, link.error or ""), []).append(link.queue)
        for (upstream, state, error), queues in groups.items():
            lines.append(f"{node.node}: link from {upstream} ({len(queues)} queue(s), e.g. {queues[0]}) is {state}"
                         f"{': ' + error if error else ''} -> {link_fix(error or state)}")
    return lines


def wait_links(
    amqp_urls: Sequence[str],
    mgmt_urls: Sequence[str],
    topology: Topology,
    *,
    timeout_s: float = DEFAULT_LINK_WAIT_S,
    poll_s: float = 0.5,
    error_grace_s: float = ERROR_GRACE_S,
    on_poll: Callable[[StatusResult], None] | None = None,
) -> StatusResult:
    """Wait until every federation link of this deployment runs (``GET /api/federation-links``).

    Raises :class:`FederationError` with each broken link, its reason and the fix when the links do
    not all run within ``timeout_s``, or as soon as the same links stayed in ``error`` for
    ``error_grace_s`` (links reconnect every second: an error that lasts is not a blip)."""
    t0 = time.monotonic()
    erroring_since: dict[tuple[str, str, str], float] = {}
    while True:
        result = status(amqp_urls, mgmt_urls, topology)
        if on_poll is not None:
            on_poll(result)
        if result.all_running:
            return result
        now = time.monotonic()
        current = {(n.node, link.queue, link.upstream) for n in result.nodes for link in n.links if link.status == "error"}
        erroring_since = {k: erroring_since.get(k, now) for k in current}
        stuck = any(now - since >= error_grace_s for since in erroring_since.values())
        if stuck or now - t0 >= timeout_s:
            why = "stayed in error" if stuck else f"were not all running after {timeout_s:.0f}s"
            raise FederationError(
                f"federation links {why} (queues, upstreams and policy are in place):\n  "
                + "\n  ".join(describe_not_running(result))
                + "\nfix the cause, then rerun `eventpipe federation setup` (idempotent) or watch "
                "`eventpipe federation status`"
            )
        time.sleep(poll_s)


