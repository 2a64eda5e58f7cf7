"""Federation mesh on three test-owned RabbitMQ nodes: setup, idempotence, extension, teardown,
an end-to-end drain with plain pika, and a SIGKILLed peer seen by `status` and the CLI.

Each test uses its own queue prefix, so its upstreams, set and policy never meet another test's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from eventpipe.cli.federation import federation as federation_cli
from eventpipe.queues import federation as fed
from eventpipe.queues.declare import declare_delay_queue
from eventpipe.queues.management import ManagementClient
from eventpipe.queues.topology import Topology
from tests.support.mesh import Consumers, depth, publish_fast

pytestmark = pytest.mark.slow


def wait_until(pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def urls(nodes) -> tuple[list[str], list[str]]:  # noqa: ANN001 - RabbitNode list
    return [n.amqp_url for n in nodes], [n.management_url for n in nodes]


def cli_env(nodes) -> dict[str, str]:  # noqa: ANN001
    amqp, mgmt = urls(nodes)
    return {"EVENTPIPE_BROKER_URLS": ",".join(amqp), "EVENTPIPE_MANAGEMENT_URLS": ",".join(mgmt)}


def our_objects(node, topology: Topology) -> dict[str, list[str]]:  # noqa: ANN001
    """Federation objects on ``node`` that carry this deployment's names."""
    stem = fed.upstream_set_name(topology.prefix)
    with ManagementClient(node.management_url) as mc:
        return {
            "upstreams": sorted(n for n in mc.upstreams() if n.startswith(stem + "-")),
            "sets": sorted(n for n in mc.upstream_sets() if n == stem),
            "policies": sorted(n for n in mc.policies() if n == fed.policy_name(topology.prefix)),
        }


def test_setup_is_idempotent_status_running_and_teardown_cleans(rabbit_nodes) -> None:  # noqa: ANN001
    nodes = rabbit_nodes.nodes
    amqp, mgmt = urls(nodes)
    topo = Topology("it.")
    logical = ["events", "events.save", "notify"]

    first = fed.setup(amqp, mgmt, topo, logical)
    assert first.changed
    assert first.link_prefetch == fed.DEFAULT_LINK_PREFETCH
    for node in first.nodes:
        assert node.count("queue", "created") == 6
        assert node.count("upstream", "created") == 2
    assert sorted(first.federated_queues) == ["it.events", "it.events.save", "it.notify"]

    second = fed.setup(amqp, mgmt, topo, logical)
    assert not second.changed and second.summary == "unchanged"
    assert {c.action for n in second.nodes for c in n.changes} == {"unchanged"}
    json.dumps(second.to_dict())  # results are JSON-ready

    # links of every work queue to both peers on every node come up
    wait_until(lambda: fed.status(amqp, mgmt, topo).all_running, 30, "all links running")
    st = fed.status(amqp, mgmt, topo)
    assert [len(n.links) for n in st.nodes] == [6, 6, 6]  # 3 queues x 2 peers

    # the policy federates work queues only: never dead letters, never delay queues
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(nodes[0].amqp_url))
    try:
        delay_q = declare_delay_queue(conn.channel(), topo, "events", 5_000)
    finally:
        conn.close()
    with ManagementClient(nodes[0].management_url) as mc:
        def policies() -> dict[str, str | None]:
            return {q.name: q.policy for q in mc.queues() if topo.owns(q.name)}

        wait_until(lambda: policies().get("it.events") == fed.policy_name("it."), 10, "policy on it.events")
        applied = policies()
    assert applied["it.events.dlq"] is None and applied[delay_q] is None
    assert applied["it.notify"] == fed.policy_name("it.")
    assert not fed.is_federated(topo, "it.events.dlq") and not fed.is_federated(topo, delay_q)

    # CLI agrees, in both output forms
    runner = CliRunner()
    env = cli_env(nodes) | {"EVENTPIPE_QUEUE_PREFIX": "it."}
    res = runner.invoke(federation_cli, ["setup", "--queue", "events", "--queue", "events.save",
                                         "--queue", "notify", "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["summary"] == "unchanged"
    res = runner.invoke(federation_cli, ["status"], env=env)
    assert res.exit_code == 0, res.output

    down = fed.teardown(amqp, mgmt, topo)
    assert down.changed
    for node in nodes:
        assert our_objects(node, topo) == {"upstreams": [], "sets": [], "policies": []}
    again = fed.teardown(amqp, mgmt, topo)
    assert not again.changed
    res = runner.invoke(federation_cli, ["status"], env=env)
    assert res.exit_code == 1  # no policy: not running, and it says to run setup
    assert "federation setup" in res.output


def test_mesh_extends_from_two_to_three_nodes_and_shrinks_back(rabbit_nodes) -> None:  # noqa: ANN001
    nodes = rabbit_nodes.nodes
    topo = Topology("mx.")
    logical = ["work"]
    a2, m2 = urls(nodes[:2])
    a3, m3 = urls(nodes)
    try:
        fed.setup(a2, m2, topo, logical)
        wait_until(lambda: fed.status(a2, m2, topo).all_running, 30, "2-node mesh running")
        assert our_objects(nodes[2], topo)["upstreams"] == []

        grown = fed.setup(a3, m3, topo, logical)
        by_node = {n.node: n for n in grown.nodes}
        for old in nodes[:2]:
            n = by_node[old.host_port]
            assert n.count("upstream", "created") == 1 and n.count("upstream", "unchanged") == 1
            assert any(c.kind == "upstream-set" and c.action == "updated" for c in n.changes)
            assert any(c.kind == "policy" and c.action == "unchanged" for c in n.changes)
        new = by_node[nodes[2].host_port]
        assert new.count("queue", "created") == 2 and new.count("upstream", "created") == 2
        wait_until(lambda: fed.status(a3, m3, topo).all_running, 30, "3-node mesh running")
        assert [len(n.links) for n in fed.status(a3, m3, topo).nodes] == [2, 2, 2]
        assert not fed.setup(a3, m3, topo, logical).changed

        # dropping a node from the list removes its upstream from the others (only ours)
        shrunk = fed.setup(a2, m2, topo, logical)
        assert all(n.count("upstream", "removed") == 1 for n in shrunk.nodes)
        for node in nodes[:2]:
            assert len(our_objects(node, topo)["upstreams"]) == 1
    finally:
        fed.teardown(a3, m3, topo)


def test_backlog_on_a_drains_through_consumers_on_b_and_c(rabbit_nodes, record_property) -> None:  # noqa: ANN001
    """20,000 messages published to A only; consumers only on B and C receive every one."""
    nodes = rabbit_nodes.nodes
    amqp, mgmt = urls(nodes)
    topo = Topology("e2e.")
    total = 20_000
    try:
        fed.setup(amqp, mgmt, topo, ["work"])
        wait_until(lambda: fed.status(amqp, mgmt, topo).all_running, 30, "links running")
        queue = topo.queue("work")
        publish_s = publish_fast(nodes[0].amqp_url, queue, total)
        t0 = time.monotonic()
        with Consumers({"B": nodes[1].amqp_url, "C": nodes[2].amqp_url}, queue, prefetch=100) as cons:
            done = cons.wait_for(total, timeout=180)
            drain_s = time.monotonic() - t0
            time.sleep(1.0)  # late duplicates, if any, arrive now
        rec = cons.received
        assert not cons.errors, cons.errors
        figures = {
            "messages": total, "publish_s": round(publish_s, 2), "drain_s": round(drain_s, 2),
            "drain_rate_msg_s": round(total / drain_s), "duplicates": rec.duplicates,
            "per_node": dict(rec.per_node), "hops": {str(k): v for k, v in sorted(rec.hops.items())},
            "multi_hop_pct": round(100 * rec.multi_hop / max(1, sum(rec.hops.values())), 1),
            "link_prefetch": fed.DEFAULT_LINK_PREFETCH, "consumer_prefetch": 100,
        }
        print("\nfederation drain:", json.dumps(figures))
        record_property("federation_drain", json.dumps(figures))
        assert done, f"only {rec.unique} of {total} arrived: {figures}"
        assert rec.unique == total
        assert rec.per_node["B"] > 0 and rec.per_node["C"] > 0
        assert all(depth(n.amqp_url, queue) == 0 for n in nodes)
    finally:
        fed.teardown(amqp, mgmt, topo)


def test_killed_peer_shows_in_status_and_links_recover(rabbit_nodes) -> None:  # noqa: ANN001
    nodes = rabbit_nodes.nodes
    a, b, c = nodes
    amqp, mgmt = urls(nodes)
    topo = Topology("kill.")
    env = cli_env(nodes) | {"EVENTPIPE_QUEUE_PREFIX": "kill."}
    runner = CliRunner()
    try:
        fed.setup(amqp, mgmt, topo, ["work", "other"])
        wait_until(lambda: fed.status(amqp, mgmt, topo).all_running, 30, "links running")

        b.kill()  # SIGKILL: no clean close of the links' connections
        def b_links_down() -> bool:
            st = fed.status(amqp, mgmt, topo)
            from_b = st.links_from(b.amqp_url)
            return len(from_b) == 4 and all(not link.running for _, link in from_b)

        wait_until(b_links_down, 30, "links from B reported not running on A and C")
        st = fed.status(amqp, mgmt, topo)
        assert not st.all_running
        b_status = next(n for n in st.nodes if n.node == b.host_port)
        assert not b_status.reachable and "refused" in (b_status.error or "")
        for node in (a, c):
            ns = next(n for n in st.nodes if n.node == node.host_port)
            assert ns.reachable
            by_up = {link.upstream: link for link in ns.links}
            assert by_up[fed.upstream_name(topo.prefix, b.amqp_url)].status != "running"
            # the link to the surviving peer stays up
            other = c if node is a else a
            assert all(link.running for link in ns.links if link.upstream == fed.upstream_name(topo.prefix, other.amqp_url))
        res = runner.invoke(federation_cli, ["status"], env=env)
        assert res.exit_code == 1, res.output
        res = runner.invoke(federation_cli, ["status", "--json"], env=env)
        assert res.exit_code == 1 and json.loads(res.output)["all_running"] is False

        t0 = time.monotonic()
        b.start()
        wait_until(lambda: fed.status(amqp, mgmt, topo).all_running, 60, "links running again after restart")
        print(f"\nB restarted and all links running again in {time.monotonic() - t0:.1f}s "
              f"(node boot {b.last_start_seconds:.1f}s)")
        res = runner.invoke(federation_cli, ["status"], env=env)
        assert res.exit_code == 0, res.output
    finally:
        if not b.running:
            b.start()
        fed.teardown(amqp, mgmt, topo)
