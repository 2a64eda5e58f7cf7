"""ops.prune_workers, ops.prune_receipts and ops.prune_audit on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import AuditEntry, TaskReceipt, WorkerHeartbeat


def _worker(wid: str, state: str, age: timedelta) -> WorkerHeartbeat:
    at = utcnow() - age
    return WorkerHeartbeat(worker_id=wid, hostname="h", pid=1, pool="default", queues=["events"], nodes=[],
                           started_at=at, last_seen=at, tasks_done=0, state=state)


def test_dead_workers_old_receipts_and_old_audit_entries_are_pruned(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    now = utcnow()
    with rt.db.session() as s:
        s.add_all([
            _worker("live", "running", timedelta(seconds=3)),
            _worker("just-stopped", "stopped", timedelta(minutes=5)),
            _worker("stopped", "stopped", timedelta(hours=2)),
            _worker("killed", "running", timedelta(days=2)),
            TaskReceipt(key="old", task="t", done_at=now - timedelta(days=40)),
            TaskReceipt(key="new", task="t", done_at=now - timedelta(days=1)),
            AuditEntry(at=now - timedelta(days=400), user="a", action="x", target="y", outcome="ok", detail={}),
            AuditEntry(at=now - timedelta(days=10), user="a", action="x", target="y", outcome="ok", detail={}),
        ])
    for name in ("ops.prune_workers", "ops.prune_receipts", "ops.prune_audit"):
        rt.enqueue(name)
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        assert sorted(s.scalars(select(WorkerHeartbeat.worker_id))) == ["just-stopped", "live"]
        assert list(s.scalars(select(TaskReceipt.key))) == ["new"]
        assert len(s.scalars(select(AuditEntry.id)).all()) == 1
    from eventpipe.ops.housekeeping import prune_receipts, prune_workers

    assert prune_workers(rt.context) == 0 and prune_receipts(rt.context) == 0  # a rerun deletes nothing more
