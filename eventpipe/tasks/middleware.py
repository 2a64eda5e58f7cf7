"""Dramatiq middleware eventpipe adds: failure history for dead letters, idempotency receipts,
and delivery of the runtime to tasks."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, Retries

log = logging.getLogger("eventpipe.tasks")


class FailureHistory(Middleware):
    """Records every failure (time, exception, traceback) in the message options, so a dead letter
    carries its whole story: the exception, traceback, attempts and failure times."""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        if exception is None:
            return
        failures = message.options.setdefault("failures", [])
        failures.append(time.time())
        del failures[:-20]
        message.options["last_error"] = f"{type(exception).__name__}: {exception}"[:2000]
        message.options["last_traceback"] = "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__, limit=20)
        )[-8000:]
        log.warning("task %s failed (attempt %d): %s", message.actor_name, len(failures), message.options["last_error"])


REQUEUE_FLAG = "_eventpipe_requeue"


class SafeRetries(Retries):
    """dramatiq's Retries, except that a retry which cannot be published (broker down) does not
    let the original be acked: the message is flagged and the consumer requeues it instead.
    (dramatiq acks in a ``finally`` even when this middleware raises: a lost message.)"""

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except Exception:  # noqa: BLE001
            log.exception("could not schedule the retry of %s; it goes back to its queue", message.message_id)
            message.options[REQUEUE_FLAG] = True


def dead_letter_info(message: Any) -> dict[str, Any]:
    """The reason fields every dead letter carries, whatever the broker."""
    opts = message.options
    failures = opts.get("failures", [])
    return {
        "reason": opts.get("last_error", "unknown"),
        "traceback": opts.get("last_traceback", ""),
        "attempts": len(failures) or 1,
        "failure_times": failures,
    }
