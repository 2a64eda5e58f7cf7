"""Task metrics: the worker middleware that counts executions per task and queue in Prometheus.

``eventpipe_tasks_started_total``, ``eventpipe_tasks_succeeded_total``,
``eventpipe_tasks_failed_total`` (every failed attempt), ``eventpipe_tasks_retried_total`` (failed
attempts that will be retried), ``eventpipe_tasks_skipped_total`` (kill switch, expiry),
``eventpipe_task_duration_seconds`` (histogram) and ``eventpipe_tasks_in_progress`` (gauge). How
they are exposed (per-process port or a multiprocess folder) is described in
:mod:`eventpipe.ops.metrics`, which also holds the queue exporter.
"""


from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, NamedTuple

from dramatiq.middleware import Middleware
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

log = logging.getLogger("eventpipe.metrics")

LABELS = ("task", "queue")
_multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # prometheus-client's own variable

TASKS_STARTED = Counter("eventpipe_tasks_started", "Task executions started", LABELS)
TASKS_SUCCEEDED = Counter("eventpipe_tasks_succeeded", "Task executions that succeeded", LABELS)
TASKS_FAILED = Counter("eventpipe_tasks_failed", "Task executions that raised (every attempt)", LABELS)
TASKS_RETRIED = Counter("eventpipe_tasks_retried", "Failed executions that will be retried", LABELS)
TASKS_SKIPPED = Counter("eventpipe_tasks_skipped", "Messages skipped before running (kill switch, expiry)", LABELS)
TASK_DURATION = Histogram(
    "eventpipe_task_duration_seconds", "Task execution time", LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
IN_PROGRESS = Gauge("eventpipe_tasks_in_progress", "Tasks executing now", LABELS,
                    multiprocess_mode="livesum")  # summed over live processes in multiprocess mode
KILLSWITCH_DROPPED = Counter("eventpipe_killswitch_dropped", "Messages dropped by a kill switch", ("task", "rule"))


class _Children(NamedTuple):
    started: Counter
    in_progress: Gauge
    duration: Histogram
    succeeded: Counter
    failed: Counter
    retried: Counter
    skipped: Counter


_PER_TASK = (TASKS_STARTED, IN_PROGRESS, TASK_DURATION, TASKS_SUCCEEDED, TASKS_FAILED, TASKS_RETRIED, TASKS_SKIPPED)


def _labels(broker: Any, message: Any, topology: Any = None) -> dict[str, str]:
    topology = topology or getattr(broker, "topology", None)
    queue = topology.logical(message.queue_name) if topology is not None else message.queue_name
    return {"task": message.actor_name, "queue": queue}


class TaskMetrics(Middleware):
    """Counts task executions (see module docstring). Add one per worker process."""

    _server_lock = threading.Lock()
    _server_port: int | None = None

    def __init__(self, topology: Any = None, *, port: int | None = None, local_only: bool = False) -> None:
        """``topology`` (the runtime's) turns physical queue names into logical ones for labels;
        without it the broker's is used, if it has one. ``port`` and ``local_only`` come from
        ``Settings.metrics_port`` / ``metrics_local`` (``EVENTPIPE_METRICS_PORT`` / ``_LOCAL``)."""
        self.topology = topology
        self.port = port
        self.local_only = local_only
        self._started: dict[str, float] = {}
        self._by_key: dict[tuple[str, str], _Children] = {}

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        if self.port and not _multiproc:
            self.serve(self.port, local_only=self.local_only)

    @classmethod
    def serve(cls, first_port: int, tries: int = 64, *, local_only: bool = False) -> int | None:
        """Start this process's /metrics server on the first free port from ``first_port``."""
        with cls._server_lock:
            if cls._server_port is not None:
                return cls._server_port
            for port in range(first_port, first_port + tries):
                try:
                    start_http_server(port, addr="127.0.0.1" if local_only else "0.0.0.0")
                except OSError:
                    continue
                cls._server_port = port
                log.warning("metrics on :%d/metrics (pid %d)", port, os.getpid())
                return port
            log.warning("no free metrics port in %d..%d; metrics are not served", first_port, first_port + tries - 1)
            return None

    def _children(self, broker: Any, message: Any) -> _Children:
        """The labelled metrics of this message's (task, queue), resolved once per pair:
        ``labels()`` hashes and locks on every call, a measurable cost per no-op task."""
        key = (message.actor_name, message.queue_name)
        children = self._by_key.get(key)
        if children is None:
            labels = _labels(broker, message, self.topology)
            children = _Children(*(m.labels(**labels) for m in _PER_TASK))
            self._by_key[key] = children
        return children

    def before_process_message(self, broker: Any, message: Any) -> None:
        children = self._children(broker, message)
        children.started.inc()
        children.in_progress.inc()
        self._started[message.message_id] = time.perf_counter()  # dict ops are atomic under the GIL

    def _finish(self, broker: Any, message: Any) -> tuple[_Children, float | None]:
        children = self._children(broker, message)
        t0 = self._started.pop(message.message_id, None)
        if t0 is not None:
            children.in_progress.dec()
        return children, (time.perf_counter() - t0) if t0 is not None else None

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        children, elapsed = self._finish(broker, message)
        if elapsed is not None:
            children.duration.observe(elapsed)
        if exception is None:
            children.succeeded.inc()
            return
        children.failed.inc()
        # The retry middleware (SafeRetries) runs before this one in the same pass when TaskMetrics
        # is appended after it (as the runtime does): it marks a message it will not retry failed.
        if not message.failed:
            children.retried.inc()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        children, _ = self._finish(broker, message)
        children.skipped.inc()
