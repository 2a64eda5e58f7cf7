"""Coalesced acks and adaptive prefetch of the RabbitMQ consumer, against the machine's RabbitMQ.

Acks are only *noted* by worker threads and settled together by the connection's thread; these
tests check what matters to users: a message is settled only after its task reported it done, a
slow message at the head does not hold back the acks behind it, a requeued one comes back, and
what was never acked returns to the queue when the consumer goes away.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from dramatiq.message import Message

from eventpipe.queues.nodes import queue_depth
from eventpipe.queues.rabbitmq import RabbitBroker
from eventpipe.queues.topology import Topology
from tests.support.rabbit import delete_queues


@pytest.fixture
def broker(rabbit_url: str) -> Iterator[RabbitBroker]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    b = RabbitBroker([rabbit_url], Topology(prefix))
    yield b
    b.close()
    delete_queues(rabbit_url, prefix, ["acks"])


def _publish(broker: RabbitBroker, n: int) -> str:
    queue = broker.topology.queue("acks")
    broker.declare_queue(queue)
    broker.enqueue_many([Message(queue_name=queue, actor_name="t.acks", args=(), kwargs={"i": i}, options={}) for i in range(n)])
    return queue


def _take(consumer, n: int) -> list:  # noqa: ANN001 - dramatiq's Consumer
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        m = next(consumer)
        if m is not None:
            got.append(m)
    assert len(got) == n, f"received {len(got)} of {n}"
    return got


def _pump(consumer, seconds: float = 0.3) -> None:  # noqa: ANN001
    """Let the connection's thread run the noted settlements (the consumer thread's loop)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert next(consumer) is None


def _ready_after_close(consumer, url: str, queue: str) -> int:  # noqa: ANN001
    consumer.close()  # whatever was not acked goes back to the queue (done when close returns)
    time.sleep(0.5)
    return queue_depth(url, queue) or 0


def test_acks_from_many_threads_settle_every_message_once(broker: RabbitBroker, rabbit_url: str) -> None:
    queue = _publish(broker, 200)
    consumer = broker.consume(queue, prefetch=200, timeout=100)
    messages = _take(consumer, 200)
    # eight threads ack in an interleaved order, as dramatiq's worker threads do
    threads = [threading.Thread(target=lambda part=messages[i::8]: [consumer.ack(m) for m in reversed(part)]) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _pump(consumer)
    assert _ready_after_close(consumer, rabbit_url, queue) == 0


def test_slow_head_message_does_not_hold_back_the_others(broker: RabbitBroker, rabbit_url: str) -> None:
    queue = _publish(broker, 20)
    consumer = broker.consume(queue, prefetch=20, timeout=100)
    messages = _take(consumer, 20)
    for m in messages[1:]:  # the first is still "running"
        consumer.ack(m)
    _pump(consumer)
    # only the unfinished head message comes back; the 19 behind it were acked
    assert _ready_after_close(consumer, rabbit_url, queue) == 1


def test_requeued_message_returns_and_its_neighbours_are_acked(broker: RabbitBroker, rabbit_url: str) -> None:
    queue = _publish(broker, 10)
    consumer = broker.consume(queue, prefetch=10, timeout=100)
    messages = _take(consumer, 10)
    node = messages[4]._node
    node.requeue(messages[4]._generation, messages[4]._tag)
    for i, m in enumerate(messages):
        if i != 4:
            consumer.ack(m)
    again = _take(consumer, 1)[0]
    assert again.kwargs == {"i": 4} and again.redelivered
    consumer.ack(again)
    _pump(consumer)
    assert _ready_after_close(consumer, rabbit_url, queue) == 0


def test_unacked_messages_return_when_the_consumer_goes(broker: RabbitBroker, rabbit_url: str) -> None:
    queue = _publish(broker, 10)
    consumer = broker.consume(queue, prefetch=10, timeout=100)
    messages = _take(consumer, 10)
    for m in messages[:3]:
        consumer.ack(m)
    _pump(consumer)
    assert _ready_after_close(consumer, rabbit_url, queue) == 7


def test_adaptive_prefetch_grows_with_the_ack_rate_and_stays_at_the_floor_when_slow(broker: RabbitBroker) -> None:
    queue = _publish(broker, 3000)
    broker.adaptive_prefetch = True
    consumer = broker.consume(queue, prefetch=4, timeout=100)
    node = consumer.nodes[0]
    done = 0
    deadline = time.monotonic() + 20
    while node.prefetch <= 4 and time.monotonic() < deadline:
        m = next(consumer)
        if m is not None:
            consumer.ack(m)  # a fast task: acked at once
            done += 1
    assert node.prefetch > 4, f"prefetch stayed {node.prefetch} after {done} fast acks"
    grown = node.prefetch
    # no acks at all for a while (slow tasks): back to the floor
    time.sleep(0.6)
    node._adapt()
    assert node.prefetch == 4 < grown
    consumer.close()
