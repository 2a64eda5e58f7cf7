"""Closing a queue to new work (``eventpipe ops drain --queue Q``).

Choice (documented in docs/operations.md): the persisted flag ``ops_closed_queues`` is honoured at
*enqueue* time by the :class:`QueueGate` middleware, which raises :class:`QueueClosed` (a
``dramatiq.middleware.MiddlewareError``: dramatiq's ``emit_before`` lets only those through) with a
message that says how to reopen it. Producers (ingest, schedulers, tasks that fan out) then fail
loudly instead of silently piling work up, while workers keep consuming until the queue is empty.

Not refused: retries and delayed re-publishes of messages already in the system (message options
``retries`` > 0 or a delay), so closing a queue never loses work in flight.
"""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware, MiddlewareError

from eventpipe.errors import EventpipeError
from eventpipe.metadata.db import Database
from eventpipe.queues.topology import Topology

from eventpipe.metadata.flags import closed_queues


class QueueClosed(EventpipeError, MiddlewareError):
    """The queue was closed by ``eventpipe ops drain --queue``; reopen with ``eventpipe ops undrain --queue``."""


class QueueGate(Middleware):
    def __init__(self, db: Database, topology: Topology) -> None:
        self.db = db
        self.topology = topology

    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        if delay or message.options.get("retries"):
            return
        logical = self.topology.logical(message.queue_name)
        if logical in closed_queues(self.db):
            raise QueueClosed(
                f"queue {logical!r} is closed to new work (eventpipe ops drain --queue {logical}); "
                f"task {message.actor_name} was not enqueued. Reopen it with: eventpipe ops undrain --queue {logical}"
            )
