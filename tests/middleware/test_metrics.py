"""Task metrics: started, succeeded, failed, retried counts; a worker serving /metrics."""

from __future__ import annotations

from typing import Any


def test_task_metrics_count_started_succeeded_failed_retried(ops_runtime: Any) -> None:
    from prometheus_client import REGISTRY

    rt = ops_runtime

    def value(name: str, task: str) -> float:
        return REGISTRY.get_sample_value(name, {"task": task, "queue": "testing"}) or 0.0

    before = {n: value(n, "testing.flaky") for n in ("eventpipe_tasks_started_total", "eventpipe_tasks_succeeded_total",
                                                     "eventpipe_tasks_failed_total", "eventpipe_tasks_retried_total")}
    rt.enqueue("testing.flaky", key="m1")
    rt.broker.run_until_idle()
    assert value("eventpipe_tasks_started_total", "testing.flaky") - before["eventpipe_tasks_started_total"] == 2
    assert value("eventpipe_tasks_succeeded_total", "testing.flaky") - before["eventpipe_tasks_succeeded_total"] == 1
    assert value("eventpipe_tasks_failed_total", "testing.flaky") - before["eventpipe_tasks_failed_total"] == 1
    assert value("eventpipe_tasks_retried_total", "testing.flaky") - before["eventpipe_tasks_retried_total"] == 1
    assert (REGISTRY.get_sample_value("eventpipe_task_duration_seconds_count", {"task": "testing.flaky", "queue": "testing"}) or 0) >= 2
    assert REGISTRY.get_sample_value("eventpipe_tasks_in_progress", {"task": "testing.flaky", "queue": "testing"}) == 0


def test_worker_metrics_port_serves_metrics() -> None:
    import httpx

    from eventpipe.middleware.metrics import TaskMetrics
    from eventpipe.testing.ports import free_port

    got = TaskMetrics.serve(free_port())
    assert got is not None
    body = httpx.get(f"http://127.0.0.1:{got}/metrics", timeout=5).text
    assert "eventpipe_tasks_started_total" in body or "eventpipe_tasks_started" in body
