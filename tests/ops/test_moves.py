"""Drain and rebalance on three test-owned nodes, with dynamic shovels."""

from __future__ import annotations

import json
import time
from typing import Any

import pika
import pytest
from click.testing import CliRunner

from tests.support.ops import (
    declare_everywhere,
    depth,
    drain_ids,
    publish_raw,
    runtime,
)

pytestmark = pytest.mark.slow


def test_drain_node_with_10k_messages_leaves_none_there_and_loses_none(ops_env: Any, nodes: Any) -> None:
    from eventpipe.cli.ops import ops
    from eventpipe.queues.declare import delay_args

    rt = runtime()
    declare_everywhere(nodes, rt)
    a, b, c = nodes
    q = rt.topology.queue("testing")
    publish_raw(a.amqp_url, q, 10_000)
    # a delayed retry waiting on the node moves too (to the same delay queue elsewhere)
    delay_q = rt.topology.delay("testing", 600_000)
    conn = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    conn.channel().queue_declare(delay_q, durable=True, arguments=delay_args(rt.topology, "testing", 600_000))
    conn.close()
    publish_raw(a.amqp_url, delay_q, 50, start=20_000)

    t0 = time.monotonic()
    res = CliRunner().invoke(ops, ["drain", "--node", a.host_port, "--yes", "--json"])
    elapsed = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["moved"] == 10_050 and data["left"] == {}
    assert depth(a.amqp_url, q) == 0 and depth(a.amqp_url, delay_q) == 0
    assert depth(b.amqp_url, delay_q) + depth(c.amqp_url, delay_q) == 50
    ids = drain_ids(b.amqp_url, q) + drain_ids(c.amqp_url, q)
    assert set(ids) == {f"m{i}" for i in range(10_000)}, "lost messages"
    print(f"\ndrain of 10,000 (+50 delayed) from {a.host_port}: {elapsed:.1f}s including the "
          f"{2.5:.1f}s flag propagation wait; {len(ids) - len(set(ids))} duplicates")

    # publishers honour the flag: new work goes to the other nodes only
    assert a.host_port in rt.drained_nodes()
    for i in range(30):
        rt.enqueue("opstest.record", key=f"after{i}")
    assert depth(a.amqp_url, q) == 0
    assert depth(b.amqp_url, q) + depth(c.amqp_url, q) == 30
    res = CliRunner().invoke(ops, ["undrain", "--node", a.host_port, "--json"])
    assert json.loads(res.output)["changed"] is True
    assert a.host_port not in rt.drained_nodes()


def test_rebalance_moves_the_planned_counts(ops_env: Any, nodes: Any) -> None:
    from eventpipe.cli.ops import ops

    rt = runtime()
    declare_everywhere(nodes, rt)
    a, b, c = nodes
    q = rt.topology.queue("testing")
    publish_raw(a.amqp_url, q, 3000)
    # one consumer each on b and c (prefetch 1, never acks): consumer capacity, and a's has none
    holders = []
    for node in (b, c):
        conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(q, lambda *args: None)
        holders.append(conn)
    try:
        runner = CliRunner()
        dry = json.loads(runner.invoke(ops, ["rebalance", "--dry-run", "--json"]).output)
        planned = {(m["src"], m["dst"]): m["count"] for m in dry["plan"] if m["queue"] == "testing"}
        assert planned == {(a.host_port, b.host_port): 1500, (a.host_port, c.host_port): 1500}
        assert dry["results"] == [] and depth(a.amqp_url, q) == 3000

        res = runner.invoke(ops, ["rebalance", "--json"])
        assert res.exit_code == 0, res.output
        done = json.loads(res.output)
        assert {(r["src"], r["dst"]): r["moved"] for r in done["results"]} == planned
        assert depth(a.amqp_url, q) == 0
        # each consumer holds one unacked message; the rest is ready
        assert depth(b.amqp_url, q) == 1500 - 1
        assert depth(c.amqp_url, q) == 1500 - 1
        again = json.loads(runner.invoke(ops, ["rebalance", "--dry-run", "--json"]).output)
        assert [m for m in again["plan"] if m["queue"] == "testing"] == []
    finally:
        for conn in holders:
            conn.close()


def test_auto_rebalance_task_moves_a_stranded_backlog(ops_env: Any, nodes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventpipe.ops.tasks import auto_rebalance

    rt = runtime()
    declare_everywhere(nodes, rt)
    a, _b, c = nodes
    q = rt.topology.queue("testing")
    publish_raw(c.amqp_url, q, 800)
    conn = pika.BlockingConnection(pika.URLParameters(a.amqp_url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda *args: None)
    try:
        assert rt.settings.auto_rebalance is False  # off unless EVENTPIPE_AUTO_REBALANCE=1
        assert "skipped" in auto_rebalance(rt)
        monkeypatch.setattr(rt.settings, "auto_rebalance", True)
        result = auto_rebalance(rt)
        assert result["moved"] == 800 and result["errors"] == []
        assert depth(c.amqp_url, q) == 0 and depth(a.amqp_url, q) == 800 - 1
    finally:
        conn.close()
