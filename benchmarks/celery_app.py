"""Celery with a no-op task, for the baseline: acks_late, JSON, no result backend.

    BENCH_QUEUE=q BENCH_PREFETCH=1 celery -A benchmarks.celery_app worker -c 2 -P prefork -Q q
"""

import os

from celery import Celery

QUEUE = os.environ.get("BENCH_QUEUE", "bench-celery")
app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),  # 4 is Celery's default
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(**kwargs):
    pass
