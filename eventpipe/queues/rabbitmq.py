"""The RabbitMQ broker: dramatiq's worker model on eventpipe's delivery rules.

What it changes from dramatiq's own RabbitMQ broker:

- publishing goes through :class:`~eventpipe.queues.publisher.Publisher`: windowed confirms,
  failover across nodes, nothing reported sent that a node did not confirm;
- delays (retry backoff, countdowns) wait in per-delay TTL queues that dead-letter back to the
  work queue, never in a worker's memory (dramatiq holds them in the worker until their eta);
- a failed message goes to its queue's dead-letter queue *with* the exception, traceback,
  attempts and failure times in its headers (dramatiq nacks it without the reason);
- a worker consumes the same queue from every node it is given, reconnecting to each node on
  its own, so one dead node does not stop work on the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import dramatiq
import pika
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import DecodeError, QueueNotFound
from dramatiq.message import Message

from eventpipe.tasks.middleware import REQUEUE_FLAG, dead_letter_info

from .declare import DLQ_ARGS, WORK_ARGS, delay_args
from .publisher import Outgoing, Publisher, node_name
from .topology import Topology, delay_bucket

log = logging.getLogger("eventpipe.rabbitmq")

HEADER_PREFIX = "x-eventpipe-"


class RabbitBroker(dramatiq.Broker):
    def __init__(
        self,
        urls: Sequence[str],
        topology: Topology,
        *,
        middleware: list[Any] | None = None,
        window: int = 1000,
        consume_nodes: Sequence[str] | None = None,
        excluded: Any = set,
        strategy: str = "round_robin",
        preferred: str | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.urls = list(urls)
        self.topology = topology
        self.queues: set[str] = set()
        self.paused_queues: set[str] = set()  # physical names; consumers stop taking messages
        self.consume_urls = [u for u in self.urls if consume_nodes is None or node_name(u) in consume_nodes]
        self._declare_lock = threading.Lock()
        self.publisher = Publisher(self.urls, window=window, excluded=excluded, strategy=strategy, depth_of=queue_depth)
        if preferred:
            self.publisher.pin(preferred)

    # Topology --------------------------------------------------------------------------------
    def declare_queue(self, queue_name: str) -> None:
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues.add(queue_name)
            self.emit_after("declare_queue", queue_name)

    def declare_actor(self, actor: dramatiq.Actor) -> None:
        self.emit_before("declare_actor", actor)
        self.declare_queue(actor.queue_name)
        self.actors[actor.actor_name] = actor
        self.emit_after("declare_actor", actor)

    def get_declared_queues(self) -> set[str]:
        return set(self.queues)

    def get_declared_delay_queues(self) -> set[str]:
        return set()  # delays live in the broker's TTL queues: workers hold none

    def get_declared_actors(self) -> set[str]:
        return set(self.actors)

    def pin_node(self, name: str) -> None:
        self.publisher.pin(name)

    # Publishing ------------------------------------------------------------------------------
    def _outgoing(self, message: Message, delay: int | None) -> Outgoing:
        message_options = message.options
        message_options.pop("eta", None)
        body = message.encode()
        props = pika.BasicProperties(
            delivery_mode=2,
            message_id=message.message_id,
            timestamp=int(time.time()),  # publish time: ops reads backlog age from it
            content_type="application/json",
            priority=0,
        )
        if delay:
            logical = self.topology.logical(message.queue_name)
            bucket = delay_bucket(int(delay))
            name = self.topology.delay(logical, bucket)
            return Outgoing(name, body, props, declare=(name, delay_args(self.topology, logical, bucket)))
        return Outgoing(message.queue_name, body, props, declare=(message.queue_name, WORK_ARGS))

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        if message.queue_name not in self.queues:
            raise QueueNotFound(message.queue_name)
        self.emit_before("enqueue", message, delay)
        self.publisher.publish(self._outgoing(message, delay))
        self.emit_after("enqueue", message, delay)
        return message

    def enqueue_many(self, messages: Sequence[Message]) -> None:
        """Publish a batch in one confirm window (ingest, bulk enqueue)."""
        for m in messages:
            self.emit_before("enqueue", m, None)
        self.publisher.publish_many([self._outgoing(m, None) for m in messages])
        for m in messages:
            self.emit_after("enqueue", m, None)

    def dead_letter(self, queue_name: str, body: bytes, info: dict[str, Any], *, task: str, prefer: str | None = None) -> None:
        """Publish a failed message to its queue's dead-letter queue with the reason in headers."""
        logical = self.topology.logical(queue_name)
        headers = {
            f"{HEADER_PREFIX}reason": info["reason"][:4000],
            f"{HEADER_PREFIX}traceback": info["traceback"][-8000:],
            f"{HEADER_PREFIX}attempts": int(info["attempts"]),
            # AMQP tables carry no floats in pika: epoch milliseconds
            f"{HEADER_PREFIX}failure-times-ms": [int(t * 1000) for t in info["failure_times"]],
            f"{HEADER_PREFIX}queue": logical,
            f"{HEADER_PREFIX}task": task,
            f"{HEADER_PREFIX}failed-at-ms": int(time.time() * 1000),
        }
        props = pika.BasicProperties(delivery_mode=2, headers=headers, timestamp=int(time.time()), content_type="application/json")
        dlq = self.topology.dead_letter(logical)
        self.publisher.publish(Outgoing(dlq, body, props, declare=(dlq, DLQ_ARGS)))

    def dead_letter_message(self, message: Message) -> None:
        """Dead-letter a message that never ran as itself (a failed item split off a batch)."""
        self.dead_letter(message.queue_name, message.encode(), dead_letter_info(message), task=message.actor_name)

    # Consuming -------------------------------------------------------------------------------
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        return MultiNodeConsumer(self, queue_name, prefetch, timeout)

    def flush(self, queue_name: str) -> None:
        for url in self.urls:
            conn = pika.BlockingConnection(pika.URLParameters(url))
            try:
                conn.channel().queue_purge(queue_name)
            finally:
                conn.close()

    def flush_all(self) -> None:
        for q in self.queues:
            self.flush(q)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until ``queue_name`` has no ready or unacked messages on any node."""
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            if sum(queue_depth(u, queue_name) for u in self.urls) == 0:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise dramatiq.QueueJoinTimeout(queue_name)
            time.sleep(0.1)

    def close(self) -> None:
        self.publisher.close()


def queue_depth(url: str, queue_name: str) -> int:
    """Exact ready + unacked count via a passive declare (management stats lag, DESIGN.md §7)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = conn.channel().queue_declare(queue_name, passive=True)
        return int(ok.method.message_count)
    finally:
        conn.close()


class _NodeMessage(MessageProxy):
    def __init__(self, node: NodeConsumer, tag: int, message: Message, body: bytes, redelivered: bool) -> None:
        super().__init__(message)
        self._node = node
        self._tag = tag
        self._generation = node.generation  # delivery tags mean something only on their own channel
        self._body = body
        self.redelivered = redelivered


class NodeConsumer:
    """One queue on one node: a blocking connection polled by the consumer thread."""

    def __init__(self, broker: RabbitBroker, url: str, queue_name: str, prefetch: int) -> None:
        self.broker = broker
        self.url = url
        self.name = node_name(url)
        self.queue_name = queue_name
        self.prefetch = prefetch
        self.connection: pika.BlockingConnection | None = None
        self.channel: Any = None
        self.iterator: Any = None
        self.retry_at = 0.0
        self.backoff = 0.5
        self.generation = 0

    def connect(self) -> bool:
        if self.connection is not None:
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            params = pika.URLParameters(self.url)
            params.heartbeat = 30
            params.socket_timeout = 5
            params.blocked_connection_timeout = 60
            self.connection = pika.BlockingConnection(params)
            self.channel = self.connection.channel()
            logical = self.broker.topology.logical(self.queue_name)
            self.channel.queue_declare(self.queue_name, durable=True, arguments=WORK_ARGS)
            self.channel.queue_declare(self.broker.topology.dead_letter(logical), durable=True, arguments=DLQ_ARGS)
            self.channel.basic_qos(prefetch_count=self.prefetch)
            self.iterator = self.channel.consume(self.queue_name, inactivity_timeout=0)
            self.backoff = 0.5
            self.generation += 1
            log.info("consuming %s on %s (prefetch %d)", self.queue_name, self.name, self.prefetch)
            return True
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._drop(f"cannot consume {self.queue_name} on {self.name}: {exc}")
            return False

    def _drop(self, why: str) -> None:
        log.warning("%s; retrying in %.1fs", why, self.backoff)
        try:
            if self.connection is not None and self.connection.is_open:
                self.connection.close()
        except Exception:  # noqa: BLE001
            pass
        self.connection = self.channel = self.iterator = None
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, 10.0)

    def pause(self, wait: float) -> None:
        """Stop taking messages but keep serving acks: cancel the AMQP consumer (pika returns the
        messages it had buffered to the queue) and keep pumping the connection."""
        if self.connection is None:
            return
        try:
            if self.iterator is not None:
                self.channel.cancel()
                self.iterator = None
            self.connection.process_data_events(time_limit=wait)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self._drop(f"lost {self.queue_name} on {self.name}: {exc}")

    def poll(self, wait: float) -> _NodeMessage | None:
        if not self.connect():
            return None
        try:
            if self.iterator is None:  # resumed after a pause
                self.iterator = self.channel.consume(self.queue_name, inactivity_timeout=0)
            if wait > 0:
                self.connection.process_data_events(time_limit=wait)  # type: ignore[union-attr]
            method, properties, body = next(self.iterator)
        except (pika.exceptions.AMQPError, AssertionError, OSError, StopIteration) as exc:
            self._drop(f"lost {self.queue_name} on {self.name}: {exc}")
            return None
        if method is None:
            return None
        try:
            message = Message.decode(body)
        except DecodeError as exc:
            self._poison(method.delivery_tag, body, f"undecodable message: {exc}")
            return None
        return _NodeMessage(self, method.delivery_tag, message, body, method.redelivered)

    def _settle(self, generation: int, fn: Any, what: str) -> None:
        """Ack or nack on the channel the message came from. If that channel is gone, RabbitMQ
        has already put the message back: drop the ack. Raising here would make dramatiq retry
        the ack forever, and sending the tag on a newer channel could settle a different message."""
        conn, channel = self.connection, self.channel
        if generation != self.generation or conn is None or not conn.is_open or channel is None:
            log.info("%s skipped: its connection to %s is gone; the message will be redelivered", what, self.name)
            return
        try:
            conn.add_callback_threadsafe(partial(fn, channel))
        except Exception as exc:  # noqa: BLE001
            log.info("%s skipped (%s); the message will be redelivered", what, exc)

    def ack(self, generation: int, tag: int) -> None:
        self._settle(generation, lambda ch: ch.is_open and ch.basic_ack(tag), "ack")

    def requeue(self, generation: int, tag: int) -> None:
        self._settle(generation, lambda ch: ch.is_open and ch.basic_nack(tag, requeue=True), "requeue")

    def _poison(self, tag: int, body: bytes, reason: str) -> None:  # runs on the consumer thread
        info = {"reason": reason, "traceback": "", "attempts": 1, "failure_times": [time.time()]}
        try:
            self.broker.dead_letter(self.queue_name, body, info, task="<unknown>")
            self.channel.basic_ack(tag)
        except Exception:  # noqa: BLE001
            log.exception("could not dead-letter a poison message on %s; it stays queued", self.name)
            self.channel.basic_nack(tag, requeue=True)

    def close(self) -> None:
        conn = self.connection
        if conn is None:
            return
        try:
            done = threading.Event()
            conn.add_callback_threadsafe(done.set)
            while not done.is_set() and conn.is_open:
                conn.process_data_events(time_limit=0.05)
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        self.connection = None


class MultiNodeConsumer(Consumer):
    """Consumes one queue from every node; a node that fails is retried with backoff on its own."""

    def __init__(self, broker: RabbitBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.timeout = timeout / 1000
        self.nodes = [NodeConsumer(broker, url, queue_name, prefetch) for url in broker.consume_urls]
        self._turn = 0
        for node in self.nodes:
            node.connect()

    def __next__(self) -> MessageProxy | None:
        deadline = time.monotonic() + self.timeout
        if self.queue_name in self.broker.paused_queues:
            for node in self.nodes:
                node.pause(min(self.timeout, 0.2) / max(1, len(self.nodes)))
            return None
        while True:
            # one quick pass over every node, starting at a rotating one for fairness
            for i in range(len(self.nodes)):
                node = self.nodes[(self._turn + i) % len(self.nodes)]
                message = node.poll(0)
                if message is not None:
                    self._turn = (self._turn + i + 1) % len(self.nodes)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            live = [n for n in self.nodes if n.connection is not None]
            if live:
                per = min(remaining, 0.05) / len(live)
                for node in live:
                    message = node.poll(per)
                    if message is not None:
                        return message
            else:
                time.sleep(min(remaining, 0.2))

    def ack(self, message: MessageProxy) -> None:
        node: NodeConsumer = message._node  # type: ignore[attr-defined]
        if message.options.get(REQUEUE_FLAG):
            # its retry could not be published: give it back rather than lose it
            message.options.pop(REQUEUE_FLAG, None)
            node.requeue(message._generation, message._tag)  # type: ignore[attr-defined]
            return
        node.ack(message._generation, message._tag)  # type: ignore[attr-defined]

    def nack(self, message: MessageProxy) -> None:
        """Dead-letter with the reason, confirmed, then ack; if that publish fails, requeue."""
        node: NodeConsumer = message._node  # type: ignore[attr-defined]
        try:
            self.broker.dead_letter(self.queue_name, message._body, dead_letter_info(message), task=message.actor_name)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            log.exception("dead-lettering %s failed; requeueing it", message.message_id)
            node.requeue(message._generation, message._tag)  # type: ignore[attr-defined]
            return
        node.ack(message._generation, message._tag)  # type: ignore[attr-defined]

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        """Unacked messages return to their queue when the connection closes."""

    def close(self) -> None:
        for node in self.nodes:
            node.close()
