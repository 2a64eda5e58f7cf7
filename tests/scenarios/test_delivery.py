"""Delivery guarantees on the machine's RabbitMQ: kill -9, poison messages, broker-side delays,
graceful SIGTERM. Workers run as real subprocesses (`eventpipe worker`)."""

from __future__ import annotations

import os
import signal
import time

import pika
import pytest

from tests.support.rabbit import MACHINE_AMQP
from tests.support.workers import children_of, log_tail, wait_for

pytestmark = pytest.mark.rabbitmq


def runtime():
    from eventpipe.runtime import open_runtime

    return open_runtime()


def depth(name: str) -> int:
    from eventpipe.queues.nodes import queue_depth

    try:
        return queue_depth(MACHINE_AMQP, name)
    except pika.exceptions.ChannelClosedByBroker:
        return 0


def pipeline_idle(rt) -> bool:
    return all(depth(rt.topology.queue(q)) == 0 for q in ("events", "events.save", "events.post", "events.store"))


def test_kill_9_mid_run_saves_every_event_once(rabbit_env, start_worker, pg_url, monkeypatch):
    """A worker child killed with -9 mid-run: its unacked messages are redelivered, the supervisor
    replaces it, and every event is saved exactly once with exact counters."""
    monkeypatch.setenv("EVENTPIPE_DATABASE_URL", pg_url)
    from eventpipe.ingest.submit import submit_many
    from eventpipe.metadata.queries import ensure_project, totals
    from eventpipe.pipeline.demo import generate
    from eventpipe.tasks.buffers import flush_counters

    rt = runtime()
    ensure_project(rt.db, 1, "a")
    ensure_project(rt.db, 2, "b")
    ensure_project(rt.db, 3, "c")
    accepted = 0
    events = generate(3000, seed=11, now=time.time())
    for pid in (1, 2, 3):
        accepted += len(submit_many(rt, pid, [e.payload for e in events if e.project_id == pid]).accepted)
    worker = start_worker("--processes", "2", "--threads", "4", "--prefetch", "20",
                          extra_env={"EVENTPIPE_DATABASE_URL": pg_url})
    wait_for(lambda: totals(rt.db)["events_stored"] > accepted // 5, 120, "a fifth of the events saved")
    victim = children_of(worker.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: totals(rt.db)["events_stored"] == accepted and pipeline_idle(rt), 240, "all events saved")
    time.sleep(2)  # redelivered duplicates, if any, are processed and find their rows
    wait_for(lambda: pipeline_idle(rt), 60, "queues empty")
    assert totals(rt.db)["events_stored"] == accepted
    flush_counters(rt)
    from eventpipe.metadata.queries import issue_rows

    assert sum(i["count"] for i in issue_rows(rt.db)) == accepted
    assert worker.poll() is None, "the supervisor keeps running after a child died"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_poison_and_permanent_errors_go_to_the_dead_letter_queue_with_reasons(rabbit_env, start_worker):
    rt = runtime()
    dlq = rt.topology.dead_letter("testing")
    # an undecodable message published by something that is not eventpipe
    from eventpipe.queues.declare import declare_queues

    declare_queues(MACHINE_AMQP, rt.topology, ["testing"])
    conn = pika.BlockingConnection(pika.URLParameters(MACHINE_AMQP))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", rt.topology.queue("testing"), b"\x80not json", pika.BasicProperties(delivery_mode=2))
    rt.enqueue("testing.permanent", what="bad-input")
    worker = start_worker("--queues", "testing", "--threads", "2")
    try:
        wait_for(lambda: depth(dlq) == 2, 60, "two dead letters")
    except AssertionError:
        os.killpg(worker.pid, signal.SIGKILL)
        raise AssertionError(log_tail(worker)) from None
    seen = {}
    for _ in range(2):
        method, props, body = ch.basic_get(dlq, auto_ack=True)
        seen[props.headers["x-eventpipe-task"]] = (props.headers, body)
    conn.close()
    headers, body = seen["testing.permanent"]
    assert "PermanentError: cannot use 'bad-input'" in headers["x-eventpipe-reason"]
    assert "Traceback" in headers["x-eventpipe-traceback"]
    assert headers["x-eventpipe-attempts"] == 1, "a permanent error is not retried"
    assert len(headers["x-eventpipe-failure-times-ms"]) == 1
    assert abs(headers["x-eventpipe-failed-at-ms"] / 1000 - time.time()) < 600
    assert headers["x-eventpipe-queue"] == "testing"
    assert b"testing.permanent" in body
    poison_headers, poison_body = seen["<unknown>"]
    assert "undecodable" in poison_headers["x-eventpipe-reason"]
    assert poison_body == b"\x80not json"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_retry_delay_waits_in_the_broker_not_in_the_worker(rabbit_env, start_worker):
    rt = runtime()
    rt.enqueue("testing.flaky_late", key="k1")
    worker = start_worker("--queues", "testing", "--threads", "2")
    delay_queue = rt.topology.delay("testing", 10_000)
    # the retry sits in the broker's holding queue, where RabbitMQ itself counts it...
    wait_for(lambda: depth(delay_queue) == 1, 30, "the retry in the delay queue")
    # ...and not in the work queue, where a worker would have prefetched it
    assert depth(rt.topology.queue("testing")) == 0
    wait_for(lambda: rt.store.get("done/k1") is not None, 60, "the retry to succeed")
    first = float(rt.store.get("attempt/k1"))
    done = float(rt.store.get("done/k1"))
    assert done - first >= 9.9, "the retry ran no earlier than its delay"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0


def test_sigterm_lets_in_flight_tasks_finish_and_ack(rabbit_env, start_worker):
    rt = runtime()
    rt.enqueue("testing.slow", key="s1", seconds=4)
    worker = start_worker("--queues", "testing", "--threads", "1", "--prefetch", "1")
    wait_for(lambda: rt.store.get("started/s1") is not None, 30, "the slow task to start")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log_tail(worker)
    assert rt.store.get("done/s1") is not None, "the in-flight task finished before exit"
    assert depth(rt.topology.queue("testing")) == 0, "and it was acked, not left for redelivery"
