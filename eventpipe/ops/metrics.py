"""Prometheus metrics: per-task counters in workers, per-queue backlog and lag in the exporter.

Worker side, :class:`TaskMetrics` (a dramatiq middleware) counts per task and queue:

* ``eventpipe_tasks_started_total``, ``eventpipe_tasks_succeeded_total``,
  ``eventpipe_tasks_failed_total`` (every failed attempt), ``eventpipe_tasks_retried_total``
  (failed attempts that will be retried), ``eventpipe_tasks_skipped_total`` (kill switch, expiry);
* ``eventpipe_task_duration_seconds`` (histogram) and ``eventpipe_tasks_in_progress`` (gauge).

How they are exposed (a worker pool is several processes):

* ``PROMETHEUS_MULTIPROC_DIR`` set (recommended for pools): prometheus-client writes per-process
  files there; ``eventpipe ops exporter`` aggregates them next to its queue gauges. The folder must
  be emptied when the pool starts (prometheus-client's rule).
* else ``EVENTPIPE_METRICS_PORT`` set: each worker process serves its own ``/metrics`` on the first
  free port from that one upwards (up to +64), and logs which.
* neither: counted in-process only (tests, embedded runs).

Exporter side (``eventpipe ops exporter``): ``eventpipe_queue_ready``, ``eventpipe_queue_unacked``,
``eventpipe_queue_consumers``, ``eventpipe_queue_lag_seconds`` (labels ``queue``, ``node``),
``eventpipe_dead_letters`` (``queue``, ``node``), ``eventpipe_workers_alive`` and
``eventpipe_ops_scrape_errors`` — collected at scrape time, never cached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from dramatiq.middleware import Middleware
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

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
        self._lock = threading.Lock()

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

    def before_process_message(self, broker: Any, message: Any) -> None:
        labels = _labels(broker, message, self.topology)
        TASKS_STARTED.labels(**labels).inc()
        IN_PROGRESS.labels(**labels).inc()
        with self._lock:
            self._started[message.message_id] = time.perf_counter()

    def _finish(self, broker: Any, message: Any) -> tuple[dict[str, str], float | None]:
        labels = _labels(broker, message, self.topology)
        with self._lock:
            t0 = self._started.pop(message.message_id, None)
        if t0 is not None:
            IN_PROGRESS.labels(**labels).dec()
        return labels, (time.perf_counter() - t0) if t0 is not None else None

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None) -> None:
        labels, elapsed = self._finish(broker, message)
        if elapsed is not None:
            TASK_DURATION.labels(**labels).observe(elapsed)
        if exception is None:
            TASKS_SUCCEEDED.labels(**labels).inc()
            return
        TASKS_FAILED.labels(**labels).inc()
        # The retry middleware (SafeRetries) runs before this one in the same pass when TaskMetrics
        # is appended after it (as the runtime does): it marks a message it will not retry failed.
        if not message.failed:
            TASKS_RETRIED.labels(**labels).inc()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        labels, _ = self._finish(broker, message)
        TASKS_SKIPPED.labels(**labels).inc()


# Exporter ------------------------------------------------------------------------------------------
class QueueCollector:
    """Collects backlog, lag and dead letters per queue per node at scrape time (ops status data)."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt

    def collect(self) -> Any:
        from .dlq import dlq_names
        from .nodes import connect, nodes_for, ready_count
        from .status import collect

        labels = ["queue", "node"]
        ready = GaugeMetricFamily("eventpipe_queue_ready", "Ready messages (exact, passive declare)", labels=labels)
        unacked = GaugeMetricFamily("eventpipe_queue_unacked", "Delivered, not yet acked (management API)", labels=labels)
        consumers = GaugeMetricFamily("eventpipe_queue_consumers", "Consumers (management API)", labels=labels)
        lag = GaugeMetricFamily("eventpipe_queue_lag_seconds", "Age of the oldest ready message", labels=labels)
        dead = GaugeMetricFamily("eventpipe_dead_letters", "Messages in dead-letter queues", labels=labels)
        workers = GaugeMetricFamily("eventpipe_workers_alive", "Worker processes with a heartbeat in the last 15 s")
        errors = GaugeMetricFamily("eventpipe_ops_scrape_errors", "Nodes or sources that could not be read in this scrape")
        report = collect(self.rt)
        for r in report.queues:
            key = [r.queue, r.node]
            if r.ready is not None:
                ready.add_metric(key, r.ready)
            if r.unacked is not None:
                unacked.add_metric(key, r.unacked)
            if r.consumers is not None:
                consumers.add_metric(key, r.consumers)
            lag.add_metric(key, r.lag_seconds or 0.0)
        n_errors = len(report.errors)
        if not self.rt.settings.embedded:
            logical = self.rt.registry.queues()
            for node in nodes_for(self.rt.settings):
                try:
                    conn = connect(node.amqp_url)
                except Exception:  # noqa: BLE001
                    n_errors += 1
                    continue
                try:
                    for name in dlq_names(node, self.rt.topology, logical):
                        n = ready_count(conn, name)
                        if n is not None:
                            dead.add_metric([self.rt.topology.logical(name)[: -len(".dlq")], node.host_port], n)
                finally:
                    conn.close()
        else:
            from sqlalchemy import func, select

            from eventpipe.metadata.models import DeadLetter

            with self.rt.db.session() as s:
                for queue, n in s.execute(select(DeadLetter.queue, func.count()).group_by(DeadLetter.queue)):
                    dead.add_metric([queue, "sql"], n)
        workers.add_metric([], len(report.workers))
        errors.add_metric([], n_errors)
        yield from (ready, unacked, consumers, lag, dead, workers, errors)


def exporter_registry(rt: Any) -> CollectorRegistry:
    """A registry with the queue collector and, in multiprocess mode, the workers' aggregated metrics."""
    registry = CollectorRegistry()
    registry.register(QueueCollector(rt))  # type: ignore[arg-type]
    if _multiproc:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    return registry


__all__ = ["REGISTRY", "QueueCollector", "TaskMetrics", "exporter_registry"]
