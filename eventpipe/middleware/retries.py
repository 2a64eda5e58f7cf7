"""Retries: the Dramatiq middleware that keeps each failure's story for the dead letter
(:class:`FailureHistory`) and decides how long to retry (:class:`SafeRetries`), and the
classification of an exception as an outage worth retrying (:func:`is_transient`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import dramatiq
import sqlalchemy.exc
from dramatiq.middleware import Middleware, Retries

from eventpipe.queues.failures import REQUEUE_FLAG, record_failure

log = logging.getLogger("eventpipe.tasks")


class FailureHistory(Middleware):
    """Records every failure (time, exception, traceback) in the message options, so a dead letter
    carries its whole story: the exception, traceback, attempts and failure times."""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        if exception is None:
            return
        record_failure(message.options, exception)
        log.warning("task %s failed (attempt %d): %s", message.actor_name, len(message.options["failures"]), message.options["last_error"])


#: driver exceptions that mean "a server is down or slow"; eventpipe's own errors say so with
#: their ``retryable`` flag (see :mod:`eventpipe.errors`)
DRIVER_OUTAGES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


def is_transient(exc: BaseException) -> bool:
    """An outage of something the task depends on (body store, broker, database), as opposed to
    a bug or bad input: worth retrying for as long as an outage may last."""
    return bool(getattr(exc, "retryable", False)) or isinstance(exc, DRIVER_OUTAGES)


OUTAGE_RETRY_SECONDS = 3600.0  # transient failures keep retrying this long after the first one
OUTAGE_MAX_BACKOFF_MS = 30_000


class SafeRetries(Retries):
    """dramatiq's Retries with two changes.

    - Outages retry for a time budget, not a count: a task that failed because the body store,
      broker or database was unreachable keeps retrying (backoff capped at 30 s) for up to an hour
      since its first failure; only other errors count against ``max_retries``. A 30 s store
      outage therefore loses nothing instead of exhausting five quick retries.
    - A retry that cannot be published (broker down) does not let the original be acked: the
      message is flagged and the consumer requeues it. (dramatiq acks in a ``finally`` even when
      this middleware raises: a lost message.)"""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        if exception is not None:
            opts = message.options
            failures = opts.get("failures") or [time.time()]
            if is_transient(exception) and time.time() - failures[0] < OUTAGE_RETRY_SECONDS:
                opts["outage_retries"] = opts.get("outage_retries", 0) + 1
                opts["max_backoff"] = OUTAGE_MAX_BACKOFF_MS
            else:
                opts.pop("max_backoff", None)
            # outage retries do not use up the task's own retry budget
            actor_max = broker.get_actor(message.actor_name).options.get("max_retries", self.max_retries)
            opts["max_retries"] = opts.get("outage_retries", 0) + actor_max
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except Exception:  # noqa: BLE001
            log.exception("could not schedule the retry of %s; it goes back to its queue", message.message_id)
            message.options[REQUEUE_FLAG] = True
