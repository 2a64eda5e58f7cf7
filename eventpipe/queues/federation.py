"""Federation mesh between independent RabbitMQ nodes, configured through the management API.

Why federation: each node stays an independent broker (no clustering, no partitions to heal), and
an idle consumer on one node pulls backlog from a peer that is behind. A queue-federation link
pulls only when its local queue is empty and a local consumer has spare prefetch, so work moves
towards free capacity and never away from busy consumers.

What :func:`setup` creates on every node (all names recognisable as eventpipe's):

* every task queue (work + dead-letter) via :func:`~eventpipe.queues.declare.declare_queues`, so
  all nodes hold identical queues before anything federates (a link to a missing queue errors);
* one upstream per peer, ``eventpipe-<prefix>-<peer host:port>`` (ack-mode ``on-confirm``: the
  upstream message is acked only after this node confirmed it, so a crash loses nothing);
* one upstream *set* ``eventpipe-<prefix>`` listing exactly those upstreams. A named set rather than
  ``all``: ``all`` would also federate our queues from any unrelated upstream on the node (another
  deployment's prefix, an exchange-federation upstream), and deployments sharing nodes would pull
  from each other's peers;
* ONE policy ``eventpipe-<prefix>-federation`` matching work queues only. Dead-letter queues
  (``.dlq``) and delay queues (``.delay.<ms>``) are excluded: a dead letter must stay where it was
  dead-lettered for inspection, and a delay queue has no consumer (messages expire back to their
  work queue), so federating it would only shuffle timers between nodes. RabbitMQ applies one
  policy per queue, so any other per-queue setting must be passed in ``extra_policy`` here.

Everything is idempotent: a second run reports every object ``unchanged``; rerunning with one more
node extends the mesh; a node dropped from the list has its upstream removed from the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from eventpipe.errors import EventpipeError
from .declare import declare_queues
from .management import (
    BrokerNode,
    FederationLink,
    ManagementClient,
    ManagementError,
    broker_nodes,
)
from .nodes import node_name, redact_url
from .topology import Topology

# Link prefetch: how many unacked messages one federation link may hold. Lower means fewer
# messages in flight towards a node that then turns out to be busy, so fewer bounce to a third
# node (multi-hop); too low and links become the bottleneck of the drain. Measured with eventpipe
# workers draining a backlog on A from B and C (docs/benchmarks.md §3): link prefetch 10 reached
# only 60-72% of the single-node drain rate (18-22% multi-hop); 1000 reached 79-109% (20-40%
# multi-hop), meeting the >= 80% target. Drain rate is the goal, so 1000; lower it with
# `federation setup --prefetch N` where bouncing costs more than speed (e.g. slow WAN links).
DEFAULT_LINK_PREFETCH = 1000
DEFAULT_RECONNECT_DELAY_S = 1
NAME_PREFIX = "eventpipe-"

Action = Literal["created", "updated", "unchanged", "removed"]


class FederationError(EventpipeError, RuntimeError):
    """Setup could not proceed; the message says which node and what to do next."""


# ---------------------------------------------------------------------------------------------
# Names and the pattern


def deployment_slug(prefix: str) -> str:
    """The queue prefix as a name fragment (``eventpipe.`` -> ``eventpipe``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix).strip(".-_") or "default"


def upstream_name(prefix: str, peer_amqp_url: str) -> str:
    return f"{NAME_PREFIX}{deployment_slug(prefix)}-{node_name(peer_amqp_url)}"


def upstream_set_name(prefix: str) -> str:
    return f"{NAME_PREFIX}{deployment_slug(prefix)}"


def policy_name(prefix: str) -> str:
    return f"{NAME_PREFIX}{deployment_slug(prefix)}-federation"


def federation_pattern(prefix: str) -> str:
    """Regex (PCRE, evaluated by RabbitMQ) for the work queues of ``prefix``: not .dlq, not .delay.N."""
    return "^" + re.escape(prefix) + r"(?!.*\.dlq$)(?!.*\.delay\.\d+$)"


def is_federated(topology: Topology, queue_name: str) -> bool:
    """Whether the setup policy applies to ``queue_name`` (same regex, evaluated here)."""
    return re.search(federation_pattern(topology.prefix), queue_name) is not None


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Change:
    kind: Literal["queue", "upstream", "upstream-set", "policy"]
    name: str
    action: Action


@dataclass
class NodeSetup:
    node: str
    management: str
    changes: list[Change] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)

    def count(self, kind: str, action: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind and c.action == action)


@dataclass
class SetupResult:
    nodes: list[NodeSetup]
    prefix: str
    pattern: str
    policy: str
    upstream_set: str
    link_prefetch: int
    federated_queues: list[str]

    @property
    def changed(self) -> bool:
        return any(n.changed for n in self.nodes)

    @property
    def summary(self) -> str:
        return "changed" if self.changed else "unchanged"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary
        for n, node in zip(d["nodes"], self.nodes):
            n["changed"] = node.changed
        return d


@dataclass
class LinkStatus:
    queue: str
    upstream: str
    status: str
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass
class NodeStatus:
    node: str
    management: str
    reachable: bool
    error: str | None = None
    links: list[LinkStatus] = field(default_factory=list)
    policy_present: bool = False

    @property
    def all_running(self) -> bool:
        return self.reachable and self.policy_present and all(link.running for link in self.links)

    def not_running(self) -> list[LinkStatus]:
        return [link for link in self.links if not link.running]


@dataclass
class StatusResult:
    nodes: list[NodeStatus]
    prefix: str

    @property
    def all_running(self) -> bool:
        return bool(self.nodes) and all(n.all_running for n in self.nodes)

    def links_from(self, peer_amqp_url: str) -> list[tuple[str, LinkStatus]]:
        """Every (node, link) pulling from ``peer``: what breaks when that peer dies."""
        name = upstream_name(self.prefix, peer_amqp_url)
        return [(n.node, link) for n in self.nodes for link in n.links if link.upstream == name]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["all_running"] = self.all_running
        for n, node in zip(d["nodes"], self.nodes):
            n["all_running"] = node.all_running
        return d


@dataclass
class TeardownResult:
    nodes: list[NodeSetup]

    @property
    def changed(self) -> bool:
        return any(n.changed for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": asdict(self)["nodes"], "changed": self.changed}


# ---------------------------------------------------------------------------------------------
# Setup


def _upstream_value(peer: BrokerNode, prefetch: int, reconnect_delay_s: int) -> dict[str, Any]:
    return {
        "uri": peer.amqp_url,
        "prefetch-count": prefetch,
        "ack-mode": "on-confirm",
        "reconnect-delay": reconnect_delay_s,
        "trust-user-id": False,
    }


def _same(existing: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    return existing is not None and all(existing.get(k) == v for k, v in desired.items())


def _check_reachable(nodes: Sequence[BrokerNode]) -> None:
    """Fail before changing anything if any node's management API (or federation) is missing."""
    problems = []
    for node in nodes:
        with node.client() as mc:
            try:
                mc.overview()
                mc.upstreams(node.vhost)
            except ManagementError as exc:
                problems.append(str(exc))
    if problems:
        raise FederationError("cannot set up federation, nothing was changed:\n  " + "\n  ".join(problems))


def setup(
    amqp_urls: Sequence[str],
    mgmt_urls: Sequence[str],
    topology: Topology,
    logical_queues: Iterable[str],
    *,
    prefetch: int = DEFAULT_LINK_PREFETCH,
    reconnect_delay_s: int = DEFAULT_RECONNECT_DELAY_S,
    extra_policy: dict[str, Any] | None = None,
    policy_priority: int = 0,
) -> SetupResult:
    """Declare the queues on every node, then build (or extend, or verify) the federation mesh."""
    nodes = broker_nodes(amqp_urls, mgmt_urls)
    if len({n.host_port for n in nodes}) != len(nodes):
        raise FederationError("the same node is listed twice in EVENTPIPE_BROKER_URLS; list each node once")
    logical = sorted(set(logical_queues))
    _check_reachable(nodes)
    prefix = topology.prefix
    pattern = federation_pattern(prefix)
    set_name = upstream_set_name(prefix)
    pol_name = policy_name(prefix)
    definition = {"federation-upstream-set": set_name, **(extra_policy or {})}
    results: list[NodeSetup] = []

    # 1. identical queues everywhere first, so no link ever points at a missing queue
    for node in nodes:
        res = NodeSetup(node=node.host_port, management=redact_url(node.management_url))
        with node.client() as mc:
            before = {q.name for q in mc.queues(node.vhost)}
        try:
            declared = declare_queues(node.amqp_url, topology, logical)
        except Exception as exc:  # pika raises many types; all mean "could not declare here"
            raise FederationError(
                f"AMQP on {node.host_port}: could not declare queues ({type(exc).__name__}: {exc}); "
                "is the node up and EVENTPIPE_BROKER_URLS right? Rerun setup once it is (it is idempotent)"
            ) from None
        for name in declared:
            res.changes.append(Change("queue", name, "unchanged" if name in before else "created"))
        results.append(res)

    # 2. upstreams, the set naming them, and the one policy, node by node
    for node, res in zip(nodes, results):
        peers = [p for p in nodes if p is not node]
        vhost = node.vhost
        with node.client() as mc:
            existing = mc.upstreams(vhost)
            sets = mc.upstream_sets(vhost)
            ours_before = {m.get("upstream") for m in sets.get(set_name, [])}
            desired = {upstream_name(prefix, p.amqp_url): _upstream_value(p, prefetch, reconnect_delay_s) for p in peers}
            for name, value in desired.items():
                if _same(existing.get(name), value):
                    res.changes.append(Change("upstream", name, "unchanged"))
                else:
                    mc.put_upstream(name, value, vhost)
                    res.changes.append(Change("upstream", name, "updated" if name in existing else "created"))

            members = [{"upstream": name} for name in sorted(desired)]
            policies = mc.policies(vhost)
            if members:
                if sets.get(set_name) == members:
                    res.changes.append(Change("upstream-set", set_name, "unchanged"))
                else:
                    mc.put_upstream_set(set_name, members, vhost)
                    res.changes.append(Change("upstream-set", set_name, "updated" if set_name in sets else "created"))
                have = policies.get(pol_name)
                want = {"pattern": pattern, "definition": definition, "apply-to": "queues", "priority": policy_priority}
                if _same(have, want):
                    res.changes.append(Change("policy", pol_name, "unchanged"))
                else:
                    mc.put_policy(pol_name, pattern, definition, priority=policy_priority, vhost=vhost)
                    res.changes.append(Change("policy", pol_name, "updated" if have else "created"))
            else:  # a single node: nothing to federate from
                if mc.delete_policy(pol_name, vhost):
                    res.changes.append(Change("policy", pol_name, "removed"))
                if mc.delete_upstream_set(set_name, vhost):
                    res.changes.append(Change("upstream-set", set_name, "removed"))

            # peers no longer listed: drop their upstreams (only ones our set named, never others')
            for stale in sorted(n for n in ours_before - set(desired) if n):
                if mc.delete_upstream(stale, vhost):
                    res.changes.append(Change("upstream", stale, "removed"))

    return SetupResult(
        nodes=results, prefix=prefix, pattern=pattern, policy=pol_name, upstream_set=set_name,
        link_prefetch=prefetch,
        federated_queues=[topology.queue(q) for q in logical if is_federated(topology, topology.queue(q))],
    )


# ---------------------------------------------------------------------------------------------
# Status and teardown


def status(amqp_urls: Sequence[str], mgmt_urls: Sequence[str], topology: Topology) -> StatusResult:
    """Every federation link of this deployment on every node, with its state and error.

    A link that should exist but does not (e.g. its peer died before the link first came up) is
    reported as ``missing``; an unreachable node is reported with its error, never skipped.
    """
    nodes = broker_nodes(amqp_urls, mgmt_urls)
    prefix = topology.prefix
    out: list[NodeStatus] = []
    for node in nodes:
        ns = NodeStatus(node=node.host_port, management=redact_url(node.management_url), reachable=False)
        out.append(ns)
        expected_upstreams = [upstream_name(prefix, p.amqp_url) for p in nodes if p is not node]
        try:
            with node.client() as mc:
                links = mc.federation_links(node.vhost)
                queues = [q.name for q in mc.queues(node.vhost) if is_federated(topology, q.name)]
                policy = mc.policies(node.vhost).get(policy_name(prefix))
        except ManagementError as exc:
            ns.error = str(exc)
            continue
        ns.reachable = True
        ns.policy_present = policy is not None or not expected_upstreams
        if policy is None and expected_upstreams:
            # without the policy no link can exist: one clear error beats a row per missing link
            ns.error = f"policy {policy_name(prefix)} missing: run `eventpipe federation setup`"
            continue
        seen: dict[tuple[str, str], FederationLink] = {}
        for link in links:
            if link.queue is not None and link.upstream in expected_upstreams:
                seen[(link.queue, link.upstream)] = link
        for queue in sorted(queues):
            for up in expected_upstreams:
                link = seen.get((queue, up))
                if link is None:
                    ns.links.append(LinkStatus(queue, up, "missing", "no link: is the policy applied and the peer up?"))
                else:
                    ns.links.append(LinkStatus(queue, up, link.status, link.error))
    return StatusResult(nodes=out, prefix=prefix)


# ---------------------------------------------------------------------------------------------
# Waiting for the links


def teardown(amqp_urls: Sequence[str], mgmt_urls: Sequence[str], topology: Topology) -> TeardownResult:
    """Remove the policy, upstream set and upstreams :func:`setup` made. Queues and messages stay."""
    nodes = broker_nodes(amqp_urls, mgmt_urls)
    prefix = topology.prefix
    set_name = upstream_set_name(prefix)
    pol_name = policy_name(prefix)
    results = []
    for node in nodes:
        res = NodeSetup(node=node.host_port, management=redact_url(node.management_url))
        vhost = node.vhost
        with node.client() as mc:
            if mc.delete_policy(pol_name, vhost):
                res.changes.append(Change("policy", pol_name, "removed"))
            members = {m.get("upstream") for m in mc.upstream_sets(vhost).get(set_name, [])}
            if mc.delete_upstream_set(set_name, vhost):
                res.changes.append(Change("upstream-set", set_name, "removed"))
            names = members | {upstream_name(prefix, p.amqp_url) for p in nodes if p is not node}
            for name in sorted(n for n in names if n):
                if mc.delete_upstream(name, vhost):
                    res.changes.append(Change("upstream", name, "removed"))
        results.append(res)
    return TeardownResult(nodes=results)



__all__ = [
    "DEFAULT_LINK_PREFETCH", "Change", "FederationError", "LinkStatus", "NodeSetup", "NodeStatus",
    "SetupResult", "StatusResult", "TeardownResult", "ManagementClient", "federation_pattern",
    "is_federated", "policy_name", "setup", "status", "teardown", "upstream_name", "upstream_set_name",
    ]
