"""Periodic pruning of operational tables that nothing else trims.

- ``worker_heartbeats``: a worker writes its row every few seconds and marks it ``stopped`` on a
  clean exit, but a killed worker's row stays forever (a new pid gets a new id); ``ops status``
  only shows recent rows, so old ones are dead weight. Stopped rows go after an hour, any row
  silent for a day goes too (a live worker rewrites its row within seconds, so it comes back).
- ``task_receipts``: idempotency receipts only matter while a redelivery of the same message
  is possible (hours); thirty days is ample.
- ``web_audit``: the console's audit trail, kept for a year by default.
Each is a plain DELETE by age: a rerun deletes nothing more."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import AuditEntry, TaskReceipt, WorkerHeartbeat
from eventpipe.tasks.api import TaskContext, task


@task("ops.prune_workers", queue="ops", max_retries=3, every="1h", schedule={"expires_s": 3000})
def prune_workers(ctx: TaskContext, *, stopped_hours: float = 1.0, silent_hours: float = 24.0) -> int:
    """Drop heartbeat rows of workers that stopped, or have been silent for ``silent_hours``."""
    now = utcnow()
    with ctx.db.session() as s:
        return s.execute(
            delete(WorkerHeartbeat).where(
                or_(
                    (WorkerHeartbeat.state == "stopped") & (WorkerHeartbeat.last_seen < now - timedelta(hours=stopped_hours)),
                    WorkerHeartbeat.last_seen < now - timedelta(hours=silent_hours),
                )
            )
        ).rowcount or 0


@task("ops.prune_receipts", queue="ops", max_retries=3, cron="45 2 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def prune_receipts(ctx: TaskContext, *, keep_days: float = 30.0) -> int:
    """Drop idempotency receipts older than ``keep_days`` (no redelivery comes that late)."""
    with ctx.db.session() as s:
        return s.execute(delete(TaskReceipt).where(TaskReceipt.done_at < utcnow() - timedelta(days=keep_days))).rowcount or 0


@task("ops.prune_audit", queue="ops", max_retries=3, cron="55 2 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def prune_audit(ctx: TaskContext, *, keep_days: float = 365.0) -> int:
    """Drop console audit entries older than ``keep_days`` (a year by default)."""
    with ctx.db.session() as s:
        return s.execute(delete(AuditEntry).where(AuditEntry.at < utcnow() - timedelta(days=keep_days))).rowcount or 0
