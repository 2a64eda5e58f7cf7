"""Consuming from RabbitMQ: one queue from every node a worker is given, each node on its own.

A node that fails is reconnected with backoff while the others keep serving; acks go back on the
channel the message came from (or are dropped if that channel is gone: RabbitMQ redelivers);
an undecodable message is dead-lettered with the reason; a message whose retry could not be
published is requeued rather than acked.

Acks are coalesced. Worker threads only note a finished delivery tag; the connection's thread
settles everything noted since its last turn at once: one ``basic_ack(multiple=True)`` for the
longest run of finished tags at the head of the channel's unsettled ones, single acks for the
finished tags behind a message still running (so a slow task never holds back its neighbours'
acks and never blocks the prefetch window), and one socket write for all of it. A profile of
no-op tasks showed a wake-up, an ack frame and a flush per message as a quarter of the worker's
CPU; nothing is acked earlier than before: a tag is acked only after its task finished.

Prefetch adapts unless it was set by hand. It starts at the worker's floor (2 x threads) and,
twice a second, becomes about a quarter of a second of this consumer's measured ack rate (at most
:data:`PREFETCH_CEILING`): fast tasks get a deep window, so the broker is never waiting on a round
trip for the next message (no-op tasks: 14.5k/s at prefetch 16, 20.7k/s at 256), while slow
tasks keep the small window that spreads them over workers and federated nodes instead of
hoarding them in one process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
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

PREFETCH_CEILING = 1000
PREFETCH_SECONDS = 0.25  # adaptive prefetch: about this much of the consumer's work in flight
_ADAPT_EVERY_S = 0.5


class ConsumingBroker(Protocol):
    """What the consumers need of their broker (``RabbitBroker`` has it). A shape, not an import of
    rabbitmq.py, which imports this module: no cycle between the two."""

    topology: Topology
    consume_urls: list[str]
    paused_queues: set[str]
    adaptive_prefetch: bool

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

    def __init__(self, broker: ConsumingBroker, url: str, queue_name: str, prefetch: int, *, adaptive: bool = False) -> None:
        self.broker = broker
        self.url = url
        self.name = node_name(url)
        self.queue_name = queue_name
        self.floor = self.prefetch = prefetch
        self.adaptive = adaptive
        self._acked = 0
        self._adapt_at = time.monotonic() + _ADAPT_EVERY_S
        self.connection: pika.BlockingConnection | None = None
        self.channel: Any = None
        self.iterator: Any = None
        self.retry_at = 0.0
        self.backoff = 0.5
        self.generation = 0
        # delivery tags handed out and not yet settled, ascending (dict: ordered, O(1) delete)
        self._unsettled: dict[int, None] = {}
        # settlements noted by worker threads, applied by the connection's thread
        self._noted: list[tuple[int, int, bool]] = []  # (generation, tag, requeue)
        self._noted_lock = threading.Lock()
        self._flush_scheduled = False

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
            self.prefetch = self.floor
            # RabbitMQ applies a changed per-consumer prefetch to new consumers only; the
            # channel-wide one (one consumer per channel here: the same limit) changes live
            self.channel.basic_qos(prefetch_count=self.prefetch, global_qos=self.adaptive)
            self.iterator = self.channel.consume(self.queue_name, inactivity_timeout=0)
            self.backoff = 0.5
            self.generation += 1
            self._unsettled = {}
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
            if self.adaptive and time.monotonic() >= self._adapt_at:
                self._adapt()
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
        self._unsettled[method.delivery_tag] = None
        return _NodeMessage(self, method.delivery_tag, message, body, method.redelivered)

    def _adapt(self) -> None:
        """Set prefetch to about PREFETCH_SECONDS of the ack rate since the last turn."""
        now = time.monotonic()
        rate = self._acked / (now - self._adapt_at + _ADAPT_EVERY_S)
        self._acked, self._adapt_at = 0, now + _ADAPT_EVERY_S
        want = max(self.floor, min(PREFETCH_CEILING, int(rate * PREFETCH_SECONDS)))
        if want != self.prefetch and (want > self.prefetch * 1.25 or want < self.prefetch * 0.75 or want == self.floor):
            self.channel.basic_qos(prefetch_count=want, global_qos=True)
            log.debug("prefetch of %s on %s: %d -> %d (%.0f acks/s)", self.queue_name, self.name, self.prefetch, want, rate)
            self.prefetch = want

    def _note(self, generation: int, tag: int, requeue: bool) -> None:
        """Settle on the channel the message came from, on the connection's thread. If that
        channel is gone, RabbitMQ has already put the message back: drop the settlement. Raising
        here would make dramatiq retry the ack forever, and sending the tag on a newer channel
        could settle a different message."""
        what = "requeue" if requeue else "ack"
        conn = self.connection
        if generation != self.generation or conn is None or not conn.is_open or self.channel is None:
            log.info("%s skipped: its connection to %s is gone; the message will be redelivered", what, self.name)
            return
        with self._noted_lock:
            self._noted.append((generation, tag, requeue))
            if self._flush_scheduled:
                return  # the pending flush takes this one too: one wake-up for many acks
            self._flush_scheduled = True
        try:
            conn.add_callback_threadsafe(self._flush)
        except Exception as exc:  # noqa: BLE001
            with self._noted_lock:
                self._flush_scheduled = False
            log.info("%s skipped (%s); the message will be redelivered", what, exc)

    def ack(self, generation: int, tag: int) -> None:
        self._note(generation, tag, False)

    def requeue(self, generation: int, tag: int) -> None:
        self._note(generation, tag, True)

    def _flush(self) -> None:
        """Runs on the connection's thread: apply every noted settlement in one socket write."""
        with self._noted_lock:
            noted, self._noted = self._noted, []
            self._flush_scheduled = False
        channel = self.channel
        if channel is None or not channel.is_open:
            return
        impl = channel._impl  # frames are queued here and written once, below
        finished: set[int] = set()
        for generation, tag, requeue in noted:
            if generation != self.generation or tag not in self._unsettled:
                continue  # from an older channel, or settled already: RabbitMQ redelivers or has it
            if requeue:
                del self._unsettled[tag]
                impl.basic_nack(tag, requeue=True)
            else:
                finished.add(tag)
        run: list[int] = []
        for tag in self._unsettled:  # ascending: the run of finished tags at the head
            if tag not in finished:
                break
            run.append(tag)
        for tag in run:
            del self._unsettled[tag]
            finished.discard(tag)
        self._acked += len(run) + len(finished)
        if run:
            impl.basic_ack(run[-1], multiple=True)
        for tag in finished:  # behind a message still running: acked alone, now
            del self._unsettled[tag]
            impl.basic_ack(tag)
        if noted and self.connection is not None:
            channel._flush_output()  # one write for every frame queued above

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
        self.nodes = [NodeConsumer(broker, url, queue_name, prefetch, adaptive=broker.adaptive_prefetch) for url in broker.consume_urls]
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
