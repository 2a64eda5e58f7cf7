"""The embedded broker: dramatiq's in-process StubBroker, plus dead letters kept in SQL so they
survive the process and `eventpipe ops dlq` can show them. No services needed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dramatiq.brokers.stub import StubBroker, _StubConsumer

from .hooks import OnlyDefinedHooks


class EmbeddedBroker(OnlyDefinedHooks, StubBroker):
    """The in-process implementation of :class:`~eventpipe.queues.broker.EventBroker`."""

    in_process = True

    def __init__(self, middleware: list[Any] | None = None, *, on_dead_letter: Callable[[str, Any], None]) -> None:
        super().__init__(middleware, fail_fast_default=False)
        self.on_dead_letter = on_dead_letter
        self.paused_queues: set[str] = set()  # pauses are a RabbitMQ-worker feature; kept for one interface

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> _StubConsumer:
        consumer = super().consume(queue_name, prefetch, timeout)
        broker = self
        original_nack = consumer.nack

        def nack(message: Any) -> None:
            original_nack(message)
            broker.on_dead_letter(queue_name, message)

        consumer.nack = nack  # type: ignore[method-assign]
        return consumer

    def enqueue_many(self, messages: list[Any]) -> None:
        for message in messages:
            self.enqueue(message)

    def pin_node(self, node: str) -> None:
        raise ValueError("--node needs RabbitMQ nodes (EVENTPIPE_BROKER_URLS); the embedded broker has none")

    def dead_letter_message(self, message: Any) -> None:
        """Dead-letter a message that never ran as itself (a failed item split off a batch)."""
        self.on_dead_letter(message.queue_name, message)

    def purge(self, queue_name: str) -> dict[str, int | None]:
        q = self.queues.get(queue_name)
        count = q.qsize() if q is not None else 0
        if q is not None:
            self.flush(queue_name)
        return {"embedded": count}

    def depth(self, queue_name: str) -> int:
        q = self.queues.get(queue_name)
        return q.unfinished_tasks if q is not None else 0

    @contextmanager
    def workers(self, *, threads: int = 4) -> Iterator[None]:
        from dramatiq import Worker

        worker = Worker(self, worker_threads=threads)
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    def pending(self) -> int:
        """Messages waiting or in flight in every queue, delay queues included."""
        return sum(q.unfinished_tasks for q in self.queues.values())

    def run_until_idle(self, *, threads: int = 4, timeout_s: float = 3600, progress: Callable[[], None] | None = None) -> None:
        """Start a worker, wait until every queue is empty and nothing is in flight, stop it."""
        from dramatiq import Worker

        worker = Worker(self, worker_threads=threads, worker_timeout=50)
        worker.start()
        deadline = time.monotonic() + timeout_s
        try:
            idle_rounds = 0
            while idle_rounds < 3:  # three quiet looks in a row: nothing re-enqueued in between
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queues still busy after {timeout_s:.0f}s: {self.pending()} messages")
                if progress:
                    progress()
                idle_rounds = idle_rounds + 1 if self.pending() == 0 else 0
                time.sleep(0.05)
        finally:
            worker.stop()
