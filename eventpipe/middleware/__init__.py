"""What runs around every task, one module per concept, and the default list in one place.

Order matters: dramatiq calls ``before_*`` hooks in list order and ``after_*`` hooks in reverse,
so :class:`FailureHistory` comes last: it records a failure before :class:`SafeRetries` copies the
message for its retry.
"""

from __future__ import annotations

from dramatiq.middleware import CurrentMessage, Middleware, ShutdownNotifications, TimeLimit

from eventpipe.config import Settings
from eventpipe.metadata.db import Database
from eventpipe.queues.topology import Topology

from .expiry import SlotExpiry
from .gate import QueueClosed, QueueGate
from .killswitch import KillSwitch
from .metrics import TaskMetrics
from .retries import FailureHistory, SafeRetries, is_transient


def default_middleware(db: Database, topology: Topology, settings: Settings) -> list[Middleware]:
    """The middleware every eventpipe broker runs, in order."""
    return [
        TimeLimit(),
        ShutdownNotifications(),
        CurrentMessage(),
        SlotExpiry(),  # scheduled slots that arrive too late are skipped
        SafeRetries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        KillSwitch(db),  # operators' rules: drop matching messages (or batch items), counted
        QueueGate(db, topology),  # `ops drain --queue`: refuse new work for a closed queue
        TaskMetrics(topology, port=settings.metrics_port, local_only=settings.metrics_local),  # Prometheus per task and queue
        FailureHistory(),  # last: its after_* hook runs first
    ]


__all__ = [
    "FailureHistory",
    "KillSwitch",
    "QueueClosed",
    "QueueGate",
    "SafeRetries",
    "SlotExpiry",
    "TaskMetrics",
    "default_middleware",
    "is_transient",
]
