"""``ops status`` on three test-owned nodes: lag accuracy (±1 s of the true oldest-message age),
the peek neither reorders nor drops, the JSON contract, ``--check``, purge, the exporter."""

from __future__ import annotations

import json
import time
from typing import Any

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


def test_lag_is_within_one_second_of_the_true_oldest_message_age(ops_env: Any, nodes: Any) -> None:
    from eventpipe.cli.ops import ops
    from eventpipe.queues.nodes import connect
    from eventpipe.ops.status import lag_of

    rt = runtime()
    declare_everywhere(nodes, rt)
    a = nodes[0]
    rt.pin_node(a.host_port)
    t0 = time.time()
    rt.enqueue("opstest.record", key="oldest")
    t1 = time.time()
    time.sleep(1.5)
    for i in range(5):  # newer messages behind it must not change the answer
        rt.enqueue("opstest.record", key=f"newer{i}")
    time.sleep(2.0)
    q = rt.topology.queue("testing")
    errors = []
    for _ in range(3):
        conn = connect(a.amqp_url)
        try:
            lo = time.time() - t1
            lag = lag_of(conn, q)
            hi = time.time() - t0
        finally:
            conn.close()
        assert lag is not None
        errors.append(max(lo - lag, lag - hi, 0.0))
        assert lo - 1.0 <= lag <= hi + 1.0, (lo, lag, hi)
        time.sleep(0.7)
    # through the CLI, as an operator reads it
    before = time.time() - t1
    res = CliRunner().invoke(ops, ["status", "--json"])
    after = time.time() - t0
    assert res.exit_code == 0, res.output
    row = next(r for r in json.loads(res.output)["queues"] if r["queue"] == "testing" and r["node"] == a.host_port)
    assert before - 1.0 <= row["lag_seconds"] <= after + 1.0
    assert row["ready"] == 6
    print(f"\nlag error beyond the publish-time uncertainty ({t1 - t0:.3f}s): max {max(errors):.3f}s; "
          f"CLI lag {row['lag_seconds']:.2f}s for a true age in [{before:.2f}, {after:.2f}]s")
    assert depth(a.amqp_url, q) == 6  # nothing consumed by looking


def test_peek_neither_reorders_nor_drops(ops_env: Any, nodes: Any) -> None:
    from eventpipe.queues.nodes import connect
    from eventpipe.ops.status import peek_oldest

    rt = runtime()
    declare_everywhere(nodes, rt)
    a = nodes[0]
    q = rt.topology.queue("testing")
    publish_raw(a.amqp_url, q, 200)
    conn = connect(a.amqp_url)
    try:
        for _ in range(20):
            assert peek_oldest(conn, q) is not None
    finally:
        conn.close()
    assert drain_ids(a.amqp_url, q) == [f"m{i}" for i in range(200)]


def test_status_json_check_purge_and_exporter(ops_env: Any, nodes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventpipe.cli.ops import ops
    from eventpipe.ops.metrics import QueueCollector

    monkeypatch.setenv("EVENTPIPE_BACKLOG_THRESHOLD", "50")
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    rt = runtime()
    declare_everywhere(nodes, rt)
    b = nodes[1]
    q = rt.topology.queue("testing")
    publish_raw(b.amqp_url, q, 100)
    runner = CliRunner()
    res = runner.invoke(ops, ["status", "--json"])
    data = json.loads(res.output)
    assert set(data) == {"queues", "workers", "links"}
    rows = {r["node"]: r for r in data["queues"] if r["queue"] == "testing"}
    assert set(rows) == {n.host_port for n in nodes}
    assert rows[b.host_port]["ready"] == 100 and rows[b.host_port]["behind"]
    for field in ("queue", "node", "ready", "unacked", "consumers", "lag_seconds"):
        assert field in rows[b.host_port]
    assert runner.invoke(ops, ["status", "--check"]).exit_code == 1
    table = runner.invoke(ops, ["status"])
    assert "BEHIND" in table.output

    samples = {(m.name, s.labels.get("queue"), s.labels.get("node")): s.value
               for m in QueueCollector(rt).collect() for s in m.samples}
    assert samples[("eventpipe_queue_ready", "testing", b.host_port)] == 100
    assert samples[("eventpipe_queue_lag_seconds", "testing", b.host_port)] >= 0

    res = runner.invoke(ops, ["purge", "testing", "--yes", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["purged"] == 100
    assert runner.invoke(ops, ["status", "--check"]).exit_code == 0


def test_status_shows_federation_links(ops_env: Any, nodes: Any) -> None:
    from eventpipe.cli.ops import ops
    from eventpipe.queues import federation
    from eventpipe.queues.management import management_urls_for
    from tests.support.workers import wait_for

    rt = runtime()
    declare_everywhere(nodes, rt)
    amqp, mgmt = rt.settings.amqp_urls, management_urls_for(rt.settings)
    federation.setup(amqp, mgmt, rt.topology, ["testing"])
    try:
        runner = CliRunner()

        def links() -> list[dict[str, Any]]:
            return [link for link in json.loads(runner.invoke(ops, ["status", "--json"]).output)["links"] if link["queue"] == "testing"]

        # every node federates `testing` from both others: 3 x 2 links, all running
        wait_for(lambda: len(links()) == 6 and all(link["status"] == "running" for link in links()), 60, "links running")
        assert "guest" not in runner.invoke(ops, ["status", "--json"]).output  # no credentials printed
    finally:
        federation.teardown(amqp, mgmt, rt.topology)


def test_dead_node_status_check_and_drain_fail_clearly(ops_env: Any, nodes: Any) -> None:
    from eventpipe.cli.ops import ops

    rt = runtime()
    declare_everywhere(nodes, rt)
    c = nodes[2]
    c.kill()
    try:
        runner = CliRunner()
        res = runner.invoke(ops, ["status", "--json"])
        rows = [r for r in json.loads(res.output)["queues"] if r["node"] == c.host_port]
        assert rows and all(r["ready"] is None and r["error"] for r in rows)
        assert runner.invoke(ops, ["status", "--check"]).exit_code == 2
        res = runner.invoke(ops, ["drain", "--node", c.host_port, "--yes"])
        assert res.exit_code != 0 and "stays drained" in res.output and "guest:guest" not in res.output
        assert c.host_port in rt.drained_nodes()  # publishers avoid it from now on
    finally:
        c.start()
