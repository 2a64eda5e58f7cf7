"""ops.queue_snapshot against the machine's RabbitMQ (exact backlogs, one point per minute) and
ops.prune_snapshots on SQLite and Postgres."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import QueueSnapshot
from eventpipe.ops.snapshots import queue_history, queue_snapshot, record
from eventpipe.ops.status import QueueRow
from eventpipe.tasks.api import registry
from tests.support.rabbit import MACHINE_AMQP, delete_queues


def test_snapshot_records_the_backlog_of_each_queue(make_runtime, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    rt = make_runtime(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}", broker_url=MACHINE_AMQP, queue_prefix=prefix)
    try:
        for n in range(3):  # no worker: they wait in the stats queue
            rt.enqueue("stats.collect_platforms", days=n + 1)
        for _ in range(2):  # a second run in the same minute replaces the first point
            assert queue_snapshot(rt.context) >= 1
        history = queue_history(rt.db, queue="stats")
        assert [(h["ready"], h["node"]) for h in history] == [(3, "127.0.0.1:5672")]
        assert history[0]["lag_seconds"] is not None and history[0]["lag_seconds"] >= 0
    finally:
        delete_queues(MACHINE_AMQP, prefix, registry.queues())


def test_prune_keeps_a_week(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    now = utcnow()
    row = QueueRow(queue="events", node="n1", ready=5, unacked=0, consumers=1, lag_seconds=0.5)
    record(rt.db, [row], at=now - timedelta(days=8))
    record(rt.db, [row], at=now)
    rt.enqueue("ops.prune_snapshots")
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(QueueSnapshot)) == 1
    assert queue_history(rt.db)[0]["ready"] == 5
