"""What a failed message carries, whatever the broker: the broker's side of the retry contract.

The retry middleware records each failure in the message's options (:func:`record_failure`); a
dead letter's reason, traceback, attempts and failure times are read back from them
(:func:`dead_letter_info`). :data:`REQUEUE_FLAG` marks a message whose retry could not be
published: its consumer requeues it instead of acking, so it is never lost.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

REQUEUE_FLAG = "_eventpipe_requeue"


def record_failure(options: dict[str, Any], exception: BaseException) -> None:
    """Append one failure (time, exception, traceback) to a message's options."""
    failures = options.setdefault("failures", [])
    failures.append(time.time())
    del failures[:-20]
    options["last_error"] = f"{type(exception).__name__}: {exception}"[:2000]
    options["last_traceback"] = "".join(
        traceback.format_exception(type(exception), exception, exception.__traceback__, limit=20)
    )[-8000:]


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
