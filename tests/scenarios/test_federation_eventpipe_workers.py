"""Issue 4's end-to-end cases with eventpipe itself: publishers, `eventpipe worker` processes and
the federation mesh on three test-owned nodes. Effects are rows keyed by task key (Postgres), so
"each effect once" is checked exactly while delivery duplicates are counted, not hidden."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.support.workers import log_tail, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


@pytest.fixture
def fed(rabbit_nodes, pg_url, tmp_path, monkeypatch):
    """A federated deployment with its own queue prefix across the three nodes."""
    nodes = rabbit_nodes.nodes
    for node in nodes:
        if not node.running:
            node.start()
    prefix = f"f{uuid.uuid4().hex[:6]}."
    env = {
        "EVENTPIPE_BROKER_URLS": ",".join(n.amqp_url for n in nodes),
        "EVENTPIPE_MANAGEMENT_URLS": ",".join(n.management_url for n in nodes),
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_DATABASE_URL": pg_url,
        "EVENTPIPE_TASK_MODULES": "tests.support.tasks",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE test_effects (key text PRIMARY KEY, worker text, deliveries int)"))
    from eventpipe.queues.federation import setup, teardown
    from eventpipe.queues.topology import Topology
    from eventpipe.runtime import open_runtime, reset_runtime

    rt = open_runtime()
    urls = [n.amqp_url for n in nodes]
    mgmt = [n.management_url for n in nodes]
    setup(urls, mgmt, Topology(prefix), rt.registry.queues())
    yield {"rt": rt, "nodes": nodes, "engine": engine, "urls": urls, "mgmt": mgmt, "prefix": prefix}
    reset_runtime()
    try:
        teardown(urls, mgmt, Topology(prefix))
    except Exception:  # noqa: BLE001 - a node may be down after a failed test
        pass
    engine.dispose()


def effects(engine) -> tuple[int, int, dict[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT worker, count(*), sum(deliveries) FROM test_effects GROUP BY worker")).all()
    return sum(r[1] for r in rows), sum(r[2] for r in rows), {r[0]: r[1] for r in rows}


def depth_on(node, queue: str) -> int:
    from eventpipe.queues.nodes import queue_depth

    return queue_depth(node.amqp_url, queue)


def publish(rt, keys: list[str], *, node=None) -> None:
    if node is not None:
        rt.pin_node(node.host_port)
    for start in range(0, len(keys), 2000):
        rt.enqueue_many("testing.effect", [{"key": k} for k in keys[start : start + 2000]])
    rt.broker.publisher.preferred = None


def test_a_backlog_on_a_is_drained_by_workers_on_b_and_c_only(fed, start_worker):
    rt, (a, b, c), engine = fed["rt"], fed["nodes"], fed["engine"]
    keys = [f"a{i}" for i in range(20_000)]
    publish(rt, keys, node=a)
    assert depth_on(a, rt.topology.queue("testing")) == 20_000
    wb = start_worker("--queues", "testing", "--threads", "8", "--node", b.host_port, extra_env={"EP_TEST_TAG": "b"})
    wc = start_worker("--queues", "testing", "--threads", "8", "--node", c.host_port, extra_env={"EP_TEST_TAG": "c"})
    wait_for(lambda: effects(engine)[0] == 20_000, 600, "20,000 effects")
    done, deliveries, by_worker = effects(engine)
    assert done == 20_000, "every task's effect exactly once"
    assert set(by_worker) == {"b", "c"} and min(by_worker.values()) > 0
    assert depth_on(a, rt.topology.queue("testing")) == 0
    print(f"duplicate deliveries absorbed: {deliveries - done}; split {by_worker}")
    for w in (wb, wc):
        w.send_signal(signal.SIGTERM)
        assert w.wait(60) == 0, log_tail(w)


def test_b_a_backlog_on_a_is_shared_with_workers_everywhere(fed, start_worker):
    rt, nodes, engine = fed["rt"], fed["nodes"], fed["engine"]
    keys = [f"b{i}" for i in range(8_000)]
    publish(rt, keys, node=nodes[0])
    workers = [
        start_worker("--queues", "testing", "--threads", "4", "--node", n.host_port, extra_env={"EP_TEST_TAG": tag})
        for n, tag in zip(nodes, "ABC", strict=True)
    ]
    wait_for(lambda: effects(engine)[0] == 8_000, 600, "8,000 effects")
    _, _, by_worker = effects(engine)
    assert set(by_worker) == {"A", "B", "C"}, f"every node's workers took part: {by_worker}"
    for w in workers:
        w.send_signal(signal.SIGTERM)
        assert w.wait(60) == 0, log_tail(w)


def test_c_kill_9_of_a_mid_drain_loses_nothing(fed, start_worker):
    rt, (a, b, c), engine = fed["rt"], fed["nodes"], fed["engine"]
    keys = [f"c{i}" for i in range(10_000)]
    publish(rt, keys, node=a)
    workers = [
        start_worker("--queues", "testing", "--threads", "4", "--node", n.host_port, extra_env={"EP_TEST_TAG": tag})
        for n, tag in ((b, "b"), (c, "c"))
    ]
    wait_for(lambda: effects(engine)[0] > 2_000, 300, "the drain to be under way")
    a.kill()
    time.sleep(1)
    a.start()
    wait_for(lambda: effects(engine)[0] == 10_000, 600, "all 10,000 effects after A's restart")
    time.sleep(3)  # replayed messages (DESIGN §7) arrive and change no effect
    done, deliveries, _ = effects(engine)
    assert done == 10_000
    print(f"deliveries {deliveries} for 10,000 effects: {deliveries - done} duplicates absorbed")
    for w in workers:
        w.send_signal(signal.SIGTERM)
        assert w.wait(60) == 0, log_tail(w)


def test_d_publishers_fail_over_while_b_is_down_and_links_return(fed, start_worker):
    rt, (a, b, c), engine = fed["rt"], fed["nodes"], fed["engine"]
    from eventpipe.queues.federation import status
    from eventpipe.queues.topology import Topology

    b.kill()
    keys = [f"d{i}" for i in range(6_000)]
    publish(rt, keys)  # round-robin over A, B, C: B's share must land on A and C
    depths = {n.host_port: depth_on(n, rt.topology.queue("testing")) for n in (a, c)}
    assert sum(depths.values()) == 6_000 and min(depths.values()) > 0, depths
    workers = [
        start_worker("--queues", "testing", "--threads", "4", "--node", n.host_port, extra_env={"EP_TEST_TAG": tag})
        for n, tag in ((a, "a"), (c, "c"))
    ]
    wait_for(lambda: effects(engine)[0] == 6_000, 600, "6,000 effects with B down")
    assert not status(fed["urls"], fed["mgmt"], Topology(fed["prefix"])).all_running, "B's links are reported down"
    b.start()
    wait_for(lambda: status(fed["urls"], fed["mgmt"], Topology(fed["prefix"])).all_running, 120, "links to run again")
    from click.testing import CliRunner

    from eventpipe.cli.federation import federation

    result = CliRunner().invoke(federation, ["status", "--json"])
    assert result.exit_code == 0, result.output
    for w in workers:
        w.send_signal(signal.SIGTERM)
        assert w.wait(60) == 0, log_tail(w)
