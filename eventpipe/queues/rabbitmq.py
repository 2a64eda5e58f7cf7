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
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import dramatiq
import pika
from dramatiq.broker import Consumer
from dramatiq.errors import QueueNotFound
from dramatiq.message import Message

from .failures import dead_letter_info
from .hooks import OnlyDefinedHooks

from .declare import DLQ_ARGS, WORK_ARGS, delay_args
from .nodes import canonical_url, connect, node_name, normalize_node_name, queue_depth
from .publisher import Outgoing, Publisher
from .topology import Topology, delay_bucket

log = logging.getLogger("eventpipe.rabbitmq")

HEADER_PREFIX = "x-eventpipe-"


class RabbitBroker(OnlyDefinedHooks, dramatiq.Broker):
    """The RabbitMQ implementation of :class:`~eventpipe.queues.broker.EventBroker`."""

    in_process = False

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
        self.urls = [canonical_url(u) for u in urls]
        self.topology = topology
        self.queues: set[str] = set()
        self.paused_queues: set[str] = set()  # physical names; consumers stop taking messages
        self.adaptive_prefetch = False  # `eventpipe worker` turns it on unless --prefetch is given
        wanted = None if consume_nodes is None else {normalize_node_name(n) for n in consume_nodes}
        self.consume_urls = [u for u in self.urls if wanted is None or node_name(u) in wanted]
        self._declare_lock = threading.Lock()
        self.publisher = Publisher(self.urls, window=window, excluded=excluded, strategy=strategy, depth_of=lambda url, queue: queue_depth(url, queue) or 0)
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
        from .consumer import MultiNodeConsumer

        return MultiNodeConsumer(self, queue_name, prefetch, timeout)

    def flush(self, queue_name: str) -> None:
        for url in self.urls:
            conn = connect(url)
            try:
                conn.channel().queue_purge(queue_name)
            finally:
                conn.close()

    def purge(self, queue_name: str) -> dict[str, int | None]:
        """Purge on every node; a node that cannot be reached reports None, the others are purged."""
        out: dict[str, int | None] = {}
        for url in self.urls:
            name = node_name(url)
            try:
                conn = connect(url)
            except Exception:  # noqa: BLE001 - report the node, purge the others
                out[name] = None
                continue
            try:
                out[name] = int(conn.channel().queue_purge(queue_name).method.message_count)
            except pika.exceptions.ChannelClosedByBroker as exc:
                out[name] = 0 if exc.reply_code == 404 else None  # 404: never declared there
            except Exception:  # noqa: BLE001
                out[name] = None
            finally:
                if conn.is_open:
                    conn.close()
        return out

    def depth(self, queue_name: str) -> int:
        return sum(queue_depth(u, queue_name) or 0 for u in self.urls)

    def run_until_idle(self, *, threads: int = 4, timeout_s: float = 3600, progress: Any = None) -> None:
        """Nothing to run here: worker processes (`eventpipe worker`) do the work."""

    def workers(self, *, threads: int = 4) -> AbstractContextManager[None]:
        """Nothing to start here: worker processes (`eventpipe worker`) do the work."""
        return nullcontext()

    def flush_all(self) -> None:
        for q in self.queues:
            self.flush(q)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until ``queue_name`` has no ready or unacked messages on any node."""
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while True:
            if sum(queue_depth(u, queue_name) or 0 for u in self.urls) == 0:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise dramatiq.QueueJoinTimeout(queue_name)
            time.sleep(0.1)

    def close(self) -> None:
        self.publisher.close()
