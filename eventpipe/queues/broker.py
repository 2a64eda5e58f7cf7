"""The one broker surface eventpipe uses, whatever carries the messages.

:class:`~eventpipe.queues.embedded.EmbeddedBroker` (in-process, no services) and
:class:`~eventpipe.queues.rabbitmq.RabbitBroker` (one or several RabbitMQ nodes) both implement
it, so callers never ask which one they have. ``in_process`` is the one capability that differs
for real: an embedded broker's queues live and die with this process, so whoever publishes to it
must also run its workers (:meth:`run_until_idle`, :meth:`workers`); with RabbitMQ both are
no-ops, because workers in other processes do the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from dramatiq.message import Message


class EventBroker(Protocol):
    in_process: bool

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Publish one message; returns once the broker has it (confirmed on RabbitMQ)."""

    def enqueue_many(self, messages: Sequence[Message]) -> None:
        """Publish many messages in one confirm window."""

    def pin_node(self, node: str) -> None:
        """Publish only to node ``HOST:PORT``."""

    def dead_letter_message(self, message: Message) -> None:
        """Dead-letter a message that never ran as itself (a failed item split off a batch)."""

    def purge(self, queue_name: str) -> dict[str, int | None]:
        """Delete the ready messages of a physical queue: removed count per node (None: unreachable)."""

    def depth(self, queue_name: str) -> int:
        """Ready plus unacked messages of a physical queue, over every node that answers."""

    def run_until_idle(self, *, threads: int = 4, timeout_s: float = 3600, progress: Callable[[], None] | None = None) -> None:
        """Run in-process workers until every queue is empty (no-op where workers run elsewhere)."""

    def workers(self, *, threads: int = 4) -> AbstractContextManager[None]:
        """In-process workers for the duration of a ``with`` block (no-op where workers run elsewhere)."""

    def close(self) -> None: ...
