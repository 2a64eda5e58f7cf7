"""Ops logic without RabbitMQ: the rebalance planner, kill-switch rules, the queue gate, embedded
dead letters, metrics, status marking and queue-name classification."""

from __future__ import annotations

from typing import Any

import pytest

from eventpipe.ops.plan import Load, plan


def total_moved(moves: list[Any], src: str | None = None, dst: str | None = None) -> int:
    return sum(m.count for m in moves if (src is None or m.src == src) and (dst is None or m.dst == dst))


# planner ----------------------------------------------------------------------------------------
def test_node_without_consumers_gives_everything_to_nodes_with_consumers() -> None:
    moves = plan([Load("q", "a", 3000, 0), Load("q", "b", 0, 1), Load("q", "c", 0, 1)])
    assert total_moved(moves, "a") == 3000
    assert total_moved(moves, dst="b") == 1500 and total_moved(moves, dst="c") == 1500


def test_stranded_backlog_moves_even_when_small_and_receivers_are_full() -> None:
    moves = plan([Load("q", "a", 10, 0), Load("q", "b", 5000, 2)], min_move=100)
    assert [(m.src, m.dst, m.count) for m in moves] == [("a", "b", 10)]


def test_surplus_goes_to_deficits_in_proportion_to_consumers() -> None:
    moves = plan([Load("q", "a", 9000, 2), Load("q", "b", 0, 2), Load("q", "c", 1000, 2)])
    # fair share 10000/6 per consumer: a keeps 3333, b gets 3333, c gets 2333
    assert total_moved(moves, "a", "b") == 3333
    assert total_moved(moves, "a", "c") == 2333
    assert all(m.src == "a" for m in moves)


def test_balanced_or_slightly_uneven_backlogs_are_left_alone() -> None:
    assert plan([Load("q", "a", 1000, 2), Load("q", "b", 900, 2)]) == []
    assert plan([Load("q", "a", 1900, 1), Load("q", "b", 1000, 1)], factor=2.0) == []


def test_small_moves_are_not_worth_a_shovel() -> None:
    assert plan([Load("q", "a", 150, 1), Load("q", "b", 0, 5)], min_move=200) == []


def test_no_consumers_anywhere_means_no_moves() -> None:
    assert plan([Load("q", "a", 5000, 0), Load("q", "b", 0, 0)]) == []


def test_drained_nodes_never_receive_and_always_give() -> None:
    loads = [Load("q", "a", 0, 4), Load("q", "b", 2000, 1), Load("q", "c", 0, 1)]
    moves = plan(loads, excluded={"a"})
    assert total_moved(moves, dst="a") == 0
    moves = plan([Load("q", "a", 500, 4), Load("q", "b", 0, 1)], excluded={"a"})
    assert total_moved(moves, "a", "b") == 500


def test_plans_are_per_queue_and_deterministic() -> None:
    loads = [Load("x", "a", 4000, 0), Load("x", "b", 0, 1), Load("y", "a", 0, 1), Load("y", "b", 4000, 0)]
    first = plan(loads)
    assert first == plan(list(reversed(loads)))
    assert {(m.queue, m.src, m.dst, m.count) for m in first} == {("x", "a", "b", 4000), ("y", "b", "a", 4000)}


def test_plan_never_moves_more_than_a_node_holds() -> None:
    import random

    rnd = random.Random(7)
    for _ in range(300):
        loads = [Load("q", f"n{i}", rnd.choice([0, 10, 500, 5000, 20000]), rnd.choice([0, 0, 1, 2, 8])) for i in range(4)]
        moves = plan(loads)
        for load in loads:
            assert total_moved(moves, src=load.node) <= load.ready
            if moves:
                assert load.consumers > 0 or total_moved(moves, dst=load.node) == 0
        assert all(m.src != m.dst and m.count > 0 for m in moves)


# names ------------------------------------------------------------------------------------------
def test_classify_queue_names() -> None:
    from eventpipe.queues.topology import Topology

    t = Topology("p.")
    classify = Topology.classify
    assert classify(t, "p.events.save").kind == "work"
    assert classify(t, "p.events.save.dlq") == classify(t, t.dead_letter("events.save"))
    assert classify(t, "p.events.save.dlq").logical == "events.save"
    d = classify(t, t.delay("events", 5000))
    assert (d.kind, d.logical, d.delay_ms) == ("delay", "events", 5000)
    assert classify(t, "other.events").kind == "other"


# status marking ----------------------------------------------------------------------------------
def test_mark_flags_rows_and_totals_behind() -> None:
    from eventpipe.ops.status import QueueRow, mark

    rows = [QueueRow("q", "a", 60, 0, 1, 5.0), QueueRow("q", "b", 60, 0, 1, 120.0), QueueRow("r", "a", 0, 0, 1, 0.0)]
    totals = mark(rows, lag_threshold=60, backlog_threshold=100)
    assert [r.behind for r in rows] == [False, True, False]
    by_q = {t["queue"]: t for t in totals}
    assert by_q["q"]["ready"] == 120 and by_q["q"]["behind"] and by_q["q"]["lag_seconds"] == 120.0
    assert not by_q["r"]["behind"]


def test_publish_time_prefers_millisecond_creation_within_the_stamped_second() -> None:
    import json
    from types import SimpleNamespace

    from eventpipe.ops.status import publish_time

    body = json.dumps({"message_timestamp": 1_000_000_500_250}).encode()
    assert publish_time(SimpleNamespace(timestamp=1_000_000_500), body) == pytest.approx(1_000_000_500.25)
    # a re-published retry: the creation time is older than the stamp -> the stamp wins
    assert publish_time(SimpleNamespace(timestamp=1_000_000_900), body) == 1_000_000_900
    assert publish_time(SimpleNamespace(timestamp=None), b"raw") is None


# kill-switch rules -----------------------------------------------------------------------------
def test_rule_matching() -> None:
    from eventpipe.middleware.killswitch import Rule
    from eventpipe.ops.killswitch import parse_where

    where = parse_where(["project_id=123", "kind=crash"])
    assert where == {"project_id": 123, "kind": "crash"}
    rule = Rule(1, "events.*", where)
    assert rule.matches("events.save", {"project_id": 123, "kind": "crash", "x": 1})
    assert rule.matches("events.save", {"project_id": "123", "kind": "crash"})
    assert not rule.matches("events.save", {"project_id": 124, "kind": "crash"})
    assert not rule.matches("events.save", {"project_id": 123})
    assert not rule.matches("buffers.flush", {"project_id": 123, "kind": "crash"})
    with pytest.raises(ValueError):
        parse_where(["noequals"])


@pytest.fixture
def embedded(make_runtime: Any) -> Any:
    import tests.support.ops_tasks  # noqa: F401 - wires the ops middleware before the runtime is built

    return make_runtime(task_modules=["tests.support.ops_tasks"])


def test_killswitch_middleware_drops_only_matching_messages_and_counts_them(embedded: Any) -> None:
    from eventpipe.middleware.killswitch import KillSwitch
    from eventpipe.ops.killswitch import add_rule, list_rules

    rt = embedded
    ks = next(m for m in rt.broker.middleware if isinstance(m, KillSwitch))
    ks.ttl = 0.0  # read rules on every message in this test
    rule_id = add_rule(rt.db, "opstest.*", {"project_id": 123})
    for i in range(5):
        rt.enqueue("opstest.record", key=f"drop{i}", project_id=123)
        rt.enqueue("opstest.record", key=f"keep{i}", project_id=456)
    rt.broker.run_until_idle()
    assert all(rt.store.get(f"done/keep{i}") is not None for i in range(5))
    assert all(rt.store.get(f"done/drop{i}") is None for i in range(5))
    assert ks.dropped[rule_id] == 5
    ks.rules()  # flushes the pending count to SQL
    assert next(r for r in list_rules(rt.db) if r["id"] == rule_id)["dropped"] == 5


def test_closed_queue_refuses_new_work_but_not_retries(embedded: Any) -> None:
    from eventpipe.middleware.gate import QueueClosed
    from eventpipe.metadata.flags import clear_cache, close_queue, open_queue

    rt = embedded
    close_queue(rt.db, "testing")
    clear_cache()
    with pytest.raises(QueueClosed, match="undrain --queue testing"):
        rt.enqueue("opstest.record", key="x")
    rt.enqueue("opstest.record", key="retry", options={"retries": 1})  # a retry in flight is accepted
    open_queue(rt.db, "testing")
    rt.enqueue("opstest.record", key="y")
    rt.broker.run_until_idle()
    assert rt.store.get("done/y") is not None


def test_drained_nodes_flag_is_persisted_and_cached(embedded: Any) -> None:
    from eventpipe.metadata.flags import clear_drained, mark_drained

    rt = embedded
    assert rt.drained_nodes() == set()
    assert mark_drained(rt.db, "10.0.0.1:5672")
    assert not mark_drained(rt.db, "10.0.0.1:5672")
    assert rt.drained_nodes() == {"10.0.0.1:5672"}
    assert clear_drained(rt.db, "10.0.0.1:5672")
    assert rt.drained_nodes() == set()


def test_embedded_dead_letters_list_show_replay_purge(embedded: Any) -> None:
    from eventpipe.ops.dlq import Filter, sql_walk

    rt = embedded
    for i in range(3):
        rt.enqueue("opstest.fixable", key=f"k{i}")
    rt.enqueue("testing.permanent", what="nope")
    rt.broker.run_until_idle()
    listed = sql_walk(rt, Filter())
    assert listed.matched == 4
    fixable = [d for d in listed.items if d.task == "opstest.fixable"]
    assert "KV key 'fixed'" in fixable[0].reason and "PermanentError" in fixable[0].traceback
    one = sql_walk(rt, Filter(ident=fixable[0].message_id))
    assert one.matched == 1 and one.items[0].kwargs == {"key": fixable[0].kwargs["key"]}
    rt.store.put("fixed", b"1")
    replayed = sql_walk(rt, Filter(task="opstest.fixable"), action="replay")
    assert replayed.replayed == 3
    rt.broker.run_until_idle()
    assert all(rt.store.get(f"done/k{i}") is not None for i in range(3))
    left = sql_walk(rt, Filter())
    assert [d.task for d in left.items] == ["testing.permanent"]
    assert sql_walk(rt, Filter(task="testing.*"), action="purge").purged == 1
    assert sql_walk(rt, Filter()).matched == 0


def test_task_metrics_count_started_succeeded_failed_retried(embedded: Any) -> None:
    from prometheus_client import REGISTRY

    rt = embedded

    def value(name: str, task: str) -> float:
        return REGISTRY.get_sample_value(name, {"task": task, "queue": "testing"}) or 0.0

    before = {n: value(n, "testing.flaky") for n in ("eventpipe_tasks_started_total", "eventpipe_tasks_succeeded_total",
                                                     "eventpipe_tasks_failed_total", "eventpipe_tasks_retried_total")}
    rt.enqueue("testing.flaky", key="m1")
    rt.broker.run_until_idle()
    assert value("eventpipe_tasks_started_total", "testing.flaky") - before["eventpipe_tasks_started_total"] == 2
    assert value("eventpipe_tasks_succeeded_total", "testing.flaky") - before["eventpipe_tasks_succeeded_total"] == 1
    assert value("eventpipe_tasks_failed_total", "testing.flaky") - before["eventpipe_tasks_failed_total"] == 1
    assert value("eventpipe_tasks_retried_total", "testing.flaky") - before["eventpipe_tasks_retried_total"] == 1
    assert (REGISTRY.get_sample_value("eventpipe_task_duration_seconds_count", {"task": "testing.flaky", "queue": "testing"}) or 0) >= 2
    assert REGISTRY.get_sample_value("eventpipe_tasks_in_progress", {"task": "testing.flaky", "queue": "testing"}) == 0


def test_ops_cli_in_embedded_mode(embedded: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from eventpipe.cli.ops import ops

    monkeypatch.setenv("EVENTPIPE_HOME", str(tmp_path / ".eventpipe"))
    monkeypatch.setenv("EVENTPIPE_TASK_MODULES", "tests.support.ops_tasks")
    from eventpipe.config import get_settings
    from eventpipe.runtime import reset_runtime

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        res = runner.invoke(ops, ["status", "--json"])
        assert res.exit_code == 0, res.output
        assert set(json.loads(res.output)) == {"queues", "workers", "links"}
        res = runner.invoke(ops, ["killswitch", "add", "events.*", "--where", "project_id=123", "--json"])
        rid = json.loads(res.output)["id"]
        listed = json.loads(runner.invoke(ops, ["killswitch", "list", "--json"]).output)
        assert listed[0]["where"] == {"project_id": 123}
        assert runner.invoke(ops, ["killswitch", "remove", str(rid)]).exit_code == 0
        assert runner.invoke(ops, ["killswitch", "remove", str(rid)]).exit_code != 0
        assert runner.invoke(ops, ["pause", "testing"]).exit_code == 0
        assert json.loads(runner.invoke(ops, ["paused", "--json"]).output)[0]["queue"] == "testing"
        assert runner.invoke(ops, ["resume", "testing"]).exit_code == 0
        assert runner.invoke(ops, ["pause", "nope"]).exit_code != 0
        res = runner.invoke(ops, ["drain", "--node", "127.0.0.1:5672", "--yes"])
        assert res.exit_code != 0 and "embedded" in res.output
    finally:
        reset_runtime()


def test_unreachable_node_is_reported_not_skipped() -> None:
    from eventpipe.ops.status import node_rows
    from eventpipe.queues.management import BrokerNode
    from eventpipe.queues.topology import Topology

    dead = BrokerNode("amqp://guest:secret@127.0.0.1:1/%2F", "http://guest:secret@127.0.0.1:1")
    rows = node_rows(dead, Topology("p."), ["events", "testing"])
    assert [r.queue for r in rows] == ["events", "testing"]
    assert all(r.ready is None and r.error and "secret" not in r.error for r in rows)


def test_auto_rebalance_is_a_periodic_task_and_off_by_default(embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventpipe.ops.tasks as ops_tasks
    from eventpipe.schedules.spec import load_jobs
    from eventpipe.tasks.api import registry

    assert "ops.auto_rebalance" in registry and registry.get("ops.auto_rebalance").queue == "ops"
    spec = load_jobs().get("ops.auto_rebalance")  # declared beside its task
    assert spec.as_dict()["task"] == "ops.auto_rebalance"
    assert embedded.settings.auto_rebalance is False  # off unless EVENTPIPE_AUTO_REBALANCE=1
    assert "skipped" in ops_tasks.auto_rebalance(embedded)
    monkeypatch.setattr(embedded.settings, "auto_rebalance", True)
    assert "two or more" in ops_tasks.auto_rebalance(embedded)["skipped"]


def test_worker_metrics_port_serves_metrics() -> None:
    import socket

    import httpx

    from eventpipe.middleware.metrics import TaskMetrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = TaskMetrics.serve(port)
    assert got is not None
    body = httpx.get(f"http://127.0.0.1:{got}/metrics", timeout=5).text
    assert "eventpipe_tasks_started_total" in body or "eventpipe_tasks_started" in body
