"""Dropping scheduled messages that arrive too late to be useful.

A periodic job with ``expires_s`` publishes its messages with ``expires_at`` (epoch milliseconds,
UTC) in the dramatiq message options. When a worker picks such a message up after that instant —
the queue was backlogged, workers were down — running it is pointless: a newer slot of the same
job is already queued or about to be. :class:`SlotExpiry` skips it: the message is acknowledged
and never runs, never retried and never dead-lettered, and the drop is counted and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

log = logging.getLogger("eventpipe.schedules")

try:  # the convention operators expect; optional so the middleware never fails to load
    from prometheus_client import Counter as _PromCounter

    _EXPIRED_TOTAL: Any = _PromCounter(
        "eventpipe_schedule_expired_total",
        "Scheduled task messages dropped because their expires_at had passed",
        ["task"],
    )
except Exception:  # noqa: BLE001 - missing client or a duplicate registration on reload
    _EXPIRED_TOTAL = None


class SlotExpiry(Middleware):
    """Skip (ack without running) a message whose ``expires_at`` option is in the past.

    ``clock`` returns seconds since the epoch (tests pass a fake one). ``dropped`` counts drops
    per task name in this process.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        expires_at = message.options.get("expires_at")
        if expires_at is None:
            return
        now_ms = int(self.clock() * 1000)
        if now_ms <= int(expires_at):
            return
        with self._lock:
            self.dropped[message.actor_name] += 1
        if _EXPIRED_TOTAL is not None:
            _EXPIRED_TOTAL.labels(task=message.actor_name).inc()
        log.warning(
            "dropping expired message %s of %s (job %s, slot %s): expired %.1fs ago",
            message.message_id,
            message.actor_name,
            message.options.get("schedule_job", "?"),
            message.options.get("schedule_slot", "?"),
            (now_ms - int(expires_at)) / 1000,
        )
        raise SkipMessage(f"expired at {expires_at}")
