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
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("eventpipe.metrics")

from eventpipe.middleware.metrics import _multiproc


# Exporter ------------------------------------------------------------------------------------------
class QueueCollector:
    """Collects backlog, lag and dead letters per queue per node at scrape time (ops status data)."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt

    def collect(self) -> Any:
        from eventpipe.queues.nodes import connect, queue_depth

        from .dlq import dlq_names
        from .nodes import nodes_for
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
                        n = queue_depth(conn, name)
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


__all__ = ["REGISTRY", "QueueCollector", "exporter_registry"]
