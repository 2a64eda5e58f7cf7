"""Consuming from RabbitMQ: one queue from every node a worker is given, each node on its own.

A node that fails is reconnected with backoff while the others keep serving; acks go back on the
channel the message came from (or are dropped if that channel is gone: RabbitMQ redelivers);
an undecodable message is dead-lettered with the reason; a message whose retry could not be
published is requeued rather than acked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import pika
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from .declare import DLQ_ARGS, WORK_ARGS
from .failures import REQUEUE_FLAG, dead_letter_info
from .nodes import connect, node_name

if TYPE_CHECKING:
    from .topology import Topology

log = logging.getLogger("eventpipe.rabbitmq")


class ConsumingBroker(Protocol):
    """What the consumers need of their broker (``RabbitBroker`` has it). A shape, not an import of
    rabbitmq.py, which imports this module: no cycle between the two."""

    topology: Topology
    consume_urls: list[str]
    paused_queues: set[str]

    def dead_letter(self, queue_name: str, body: bytes, info: dict[str, Any], *, task: str) -> None: ...


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

    def __init__(self, broker: ConsumingBroker, url: str, queue_name: str, prefetch: int) -> None:
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
            self.connection = connect(self.url, timeout=5.0, heartbeat=30, blocked_timeout=60)
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

    def __init__(self, broker: ConsumingBroker, queue_name: str, prefetch: int, timeout: int) -> None:
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
