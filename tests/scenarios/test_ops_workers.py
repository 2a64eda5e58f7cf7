"""Pause, kill switches and dead-letter replay with real `eventpipe worker` subprocesses on three
test-owned nodes. Bounds are generous: "within seconds" is checked as < 15 s."""

from __future__ import annotations

import json
import time
from typing import Any

import pika
import pytest
from click.testing import CliRunner

from tests.support.ops import declare_everywhere, depth, runtime
from tests.support.workers import log_tail, wait_for

pytestmark = pytest.mark.slow

WORKER_ARGS = ("--queues", "testing", "--processes", "1", "--threads", "2")


def consumers(nodes: Any, queue: str) -> int:
    total = 0
    for n in nodes:
        conn = pika.BlockingConnection(pika.URLParameters(n.amqp_url))
        try:
            total += conn.channel().queue_declare(queue, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            pass
        finally:
            if conn.is_open:
                conn.close()
    return total


def total_depth(nodes: Any, queue: str) -> int:
    return sum(depth(n.amqp_url, queue) for n in nodes)


def start(rt: Any, nodes: Any, start_worker: Any) -> Any:
    from eventpipe.ops.status import alive_workers

    declare_everywhere(nodes, rt)
    proc = start_worker(*WORKER_ARGS)
    q = rt.topology.queue("testing")
    try:
        wait_for(lambda: consumers(nodes, q) >= len(nodes) and alive_workers(rt.db), 90, "the worker consuming on every node")
    except AssertionError:
        raise AssertionError(log_tail(proc)) from None
    return proc


def done(rt: Any, keys: list[str]) -> int:
    return sum(rt.store.get(f"done/{k}") is not None for k in keys)


def test_pause_stops_consumption_within_seconds_and_resume_restarts_it(ops_env: Any, nodes: Any, start_worker: Any) -> None:
    from eventpipe.cli.ops import ops

    rt = runtime()
    proc = start(rt, nodes, start_worker)
    q = rt.topology.queue("testing")
    warm = [f"w{i}" for i in range(5)]
    for k in warm:
        rt.enqueue("opstest.record", key=k)
    wait_for(lambda: done(rt, warm) == 5, 60, "warm-up tasks")

    t0 = time.monotonic()
    assert CliRunner().invoke(ops, ["pause", "testing"]).exit_code == 0
    wait_for(lambda: consumers(nodes, q) == 0, 15, "every consumer of the paused queue cancelled")
    stopped_after = time.monotonic() - t0
    keys = [f"p{i}" for i in range(20)]
    for k in keys:
        rt.enqueue("opstest.record", key=k)
    time.sleep(3.0)
    assert done(rt, keys) == 0, log_tail(proc)
    assert total_depth(nodes, q) == 20
    print(f"\npause: consumers gone {stopped_after:.1f}s after `ops pause`")

    assert CliRunner().invoke(ops, ["resume", "testing"]).exit_code == 0
    wait_for(lambda: done(rt, keys) == 20, 60, "paused work done after resume")


def test_killswitch_drops_only_matching_messages(ops_env: Any, nodes: Any, start_worker: Any) -> None:
    from eventpipe.cli.ops import ops

    rt = runtime()
    proc = start(rt, nodes, start_worker)
    runner = CliRunner()
    res = runner.invoke(ops, ["killswitch", "add", "opstest.*", "--where", "project_id=123", "--json"])
    rule_id = json.loads(res.output)["id"]
    time.sleep(2.5)  # the workers' rule cache (~2 s)
    drop = [f"d{i}" for i in range(20)]
    keep = [f"k{i}" for i in range(20)]
    for d, k in zip(drop, keep):
        rt.enqueue("opstest.record", key=d, project_id=123)
        rt.enqueue("opstest.record", key=k, project_id=456)
    other = [f"o{i}" for i in range(5)]
    for k in other:  # same kwargs, a task the rule does not name
        rt.enqueue("testing.flaky", key=k)
    q = rt.topology.queue("testing")
    wait_for(lambda: done(rt, keep) == 20 and done(rt, other) == 5 and total_depth(nodes, q) == 0, 90, "non-matching work done")
    assert done(rt, drop) == 0, log_tail(proc)

    def dropped() -> int:
        rows = json.loads(runner.invoke(ops, ["killswitch", "list", "--json"]).output)
        return next(r["dropped"] for r in rows if r["id"] == rule_id)

    wait_for(lambda: dropped() == 20, 15, "drop count recorded")
    assert "kill switch" in log_tail(proc, 200_000)

    assert runner.invoke(ops, ["killswitch", "remove", str(rule_id)]).exit_code == 0
    time.sleep(2.5)
    rt.enqueue("opstest.record", key="after", project_id=123)
    wait_for(lambda: done(rt, ["after"]) == 1, 60, "work runs again once the rule is removed")


def test_dlq_replay_reruns_failed_tasks_to_success_once_fixed(ops_env: Any, nodes: Any, start_worker: Any) -> None:
    from eventpipe.cli.ops import ops

    rt = runtime()
    start(rt, nodes, start_worker)
    runner = CliRunner()
    keys = [f"f{i}" for i in range(5)]
    for k in keys:
        rt.enqueue("opstest.fixable", key=k)
    rt.enqueue("testing.permanent", what="a")
    rt.enqueue("testing.permanent", what="b")

    def listed(*args: str) -> dict[str, Any]:
        res = runner.invoke(ops, ["dlq", "list", "--json", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    wait_for(lambda: listed()["matched"] == 7, 90, "seven dead letters")
    data = listed("--task", "opstest.fixable")
    assert data["matched"] == 5
    first = data["dead_letters"][0]
    assert "KV key 'fixed'" in first["reason"] and first["queue"] == "testing"
    assert listed("--queue", "testing", "--since", "10m")["matched"] == 7
    assert listed("--since", "2099-01-01T00:00:00")["matched"] == 0

    shown = json.loads(runner.invoke(ops, ["dlq", "show", first["message_id"], "--json"]).output)
    assert len(shown) == 1 and "PermanentError" in shown[0]["traceback"] and shown[0]["kwargs"]["key"] in keys
    by_index = json.loads(runner.invoke(ops, ["dlq", "show", str(first["index"]), "--json"]).output)
    assert by_index[0]["message_id"] == first["message_id"]
    assert listed()["matched"] == 7  # reading lost nothing

    rt.store.put("fixed", b"1")  # the operator fixes the cause
    res = runner.invoke(ops, ["dlq", "replay", "--task", "opstest.fixable", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["replayed"] == 5
    wait_for(lambda: done(rt, keys) == 5, 90, "replayed tasks succeed")
    remaining = listed()
    assert remaining["matched"] == 2 and {d["task"] for d in remaining["dead_letters"]} == {"testing.permanent"}

    res = runner.invoke(ops, ["dlq", "purge", "--task", "testing.permanent", "--yes", "--json"])
    assert json.loads(res.output)["purged"] == 2
    assert listed()["matched"] == 0


def test_drain_queue_refuses_new_work_and_waits_until_empty(ops_env: Any, nodes: Any, start_worker: Any) -> None:
    from eventpipe.cli.ops import ops
    from eventpipe.middleware.gate import QueueClosed

    rt = runtime()
    start(rt, nodes, start_worker)
    keys = [f"s{i}" for i in range(30)]
    for k in keys:
        rt.enqueue("testing.slow", key=k, seconds=0.05)
    res = CliRunner().invoke(ops, ["drain", "--queue", "testing", "--yes", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["empty"] is True
    wait_for(lambda: done(rt, keys) == 30, 10, "the last tasks in flight finished")
    assert total_depth(nodes, rt.topology.queue("testing")) == 0
    with pytest.raises(QueueClosed, match="undrain --queue testing"):
        rt.enqueue("opstest.record", key="refused")
    assert CliRunner().invoke(ops, ["undrain", "--queue", "testing"]).exit_code == 0
    from eventpipe.metadata.flags import clear_cache

    clear_cache()
    rt.enqueue("opstest.record", key="accepted")
    wait_for(lambda: done(rt, ["accepted"]) == 1, 60, "work accepted again")
