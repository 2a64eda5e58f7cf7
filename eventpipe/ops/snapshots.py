"""Queue history: ``ops.queue_snapshot`` records backlog, unacked, consumers and lag per queue and
node every minute; ``ops.prune_snapshots`` keeps a week. ``ops status`` shows the present; this
table answers "since when has this queue been growing" after the fact (``queue_history``).

Measured as ``ops status`` measures (exact ready counts by passive declare, lag from the oldest
message's publish time). Rows are keyed by (minute, queue, node): a redelivered or late run
within the same minute overwrites its own rows instead of adding a second point. In the
embedded mode there is no broker to measure (queues live inside each process): nothing is
recorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import QueueSnapshot
from eventpipe.queues.topology import Topology
from eventpipe.tasks.api import TaskContext, registry, task

from .nodes import nodes_for
from .status import QueueRow, node_rows


def measure(settings: Any) -> list[QueueRow]:
    """The rows ``ops status`` shows for every configured node (empty in the embedded mode)."""
    if settings.embedded:
        return []
    topology = Topology(settings.queue_prefix)
    rows: list[QueueRow] = []
    for node in nodes_for(settings):
        rows += node_rows(node, topology, registry.queues())
    return rows


def record(db: Database, rows: list[QueueRow], *, at: datetime | None = None) -> int:
    """Write one snapshot (replacing one taken earlier in the same minute); returns rows written."""
    minute = (at or utcnow()).replace(second=0, microsecond=0)
    keep = [r for r in rows if r.error is None or r.ready is not None]
    with db.session() as s:
        s.execute(delete(QueueSnapshot).where(QueueSnapshot.taken_at == minute))
        s.add_all(
            QueueSnapshot(taken_at=minute, queue=r.queue, node=r.node, ready=r.ready, unacked=r.unacked,
                          consumers=r.consumers, lag_seconds=r.lag_seconds)
            for r in {(r.queue, r.node): r for r in keep}.values()
        )
    return len(keep)


@task("ops.queue_snapshot", queue="ops", max_retries=0, time_limit_ms=50_000, every="60s", schedule={"expires_s": 55})
def queue_snapshot(ctx: TaskContext) -> int:
    """Record backlog and lag of every queue on every node (the history behind ``ops status``)."""
    return record(ctx.db, measure(ctx.settings))


@task("ops.prune_snapshots", queue="ops", max_retries=3, cron="35 * * * *", schedule={"expires_s": 3000})
def prune_snapshots(ctx: TaskContext, *, keep_days: float = 7.0) -> int:
    """Drop queue snapshots older than ``keep_days``; returns rows deleted."""
    cutoff = utcnow() - timedelta(days=keep_days)
    with ctx.db.session() as s:
        return s.execute(delete(QueueSnapshot).where(QueueSnapshot.taken_at < cutoff)).rowcount or 0


def queue_history(db: Database, *, queue: str | None = None, hours: float = 24.0) -> list[dict[str, Any]]:
    """Snapshots of the last ``hours``, oldest first (per queue and node)."""
    q = select(QueueSnapshot).where(QueueSnapshot.taken_at >= utcnow() - timedelta(hours=hours))
    if queue is not None:
        q = q.where(QueueSnapshot.queue == queue)
    with db.session() as s:
        rows = s.scalars(q.order_by(QueueSnapshot.taken_at, QueueSnapshot.queue, QueueSnapshot.node)).all()
        return [
            {"taken_at": r.taken_at.isoformat() + "Z", "queue": r.queue, "node": r.node, "ready": r.ready,
             "unacked": r.unacked, "consumers": r.consumers, "lag_seconds": r.lag_seconds}
            for r in rows
        ]
