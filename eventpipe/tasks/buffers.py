"""Write-behind counters: ``events.save`` appends one row per event; ``buffers.flush`` folds them
into the issues. The DELETE … RETURNING claims rows atomically, so concurrent flushes never
apply an increment twice, and a crashed flush rolls back and leaves its rows for the next one."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from eventpipe.metadata.models import BufferedCounter, Issue
from eventpipe.pipeline.counters import fold_increments
from eventpipe.tasks.api import TaskContext, task

FLUSH_CHUNK = 5000


def flush_counters(rt: TaskContext, *, chunk: int = FLUSH_CHUNK, project_id: int | None = None) -> int:
    """Apply every pending increment; returns how many events were counted (the sum of deltas:
    the save stage writes one row per issue per batch). ``project_id`` limits it to one project."""
    applied = 0
    while True:
        with rt.db.session() as s:
            pending = select(BufferedCounter.id)
            if project_id is not None:
                pending = pending.where(BufferedCounter.project_id == project_id)
            ids = pending.order_by(BufferedCounter.id).limit(chunk).scalar_subquery()
            rows = s.execute(
                delete(BufferedCounter)
                .where(BufferedCounter.id.in_(ids))
                .returning(BufferedCounter.issue_id, BufferedCounter.delta, BufferedCounter.seen_at)
            ).all()
            if not rows:
                return applied
            for issue_id, total in sorted(fold_increments(rows).items()):
                issue = s.get(Issue, issue_id, with_for_update=True)
                if issue is None:
                    continue  # issue deleted meanwhile: its counts go with it
                s.execute(
                    update(Issue)
                    .where(Issue.id == issue_id)
                    .values(
                        times_seen=Issue.times_seen + total.count,
                        last_seen=max(issue.last_seen, total.last_seen),
                        first_seen=min(issue.first_seen, total.first_seen),
                    )
                )
            applied += sum(delta for _, delta, _ in rows)


# Frequent, cheap and idempotent; a stale run only adds load (a later flush does the same work).
@task("buffers.flush", queue="buffers", max_retries=3, every="10s", schedule={"expires_s": 30})
def flush(rt: TaskContext) -> int:
    """Apply buffered counters (times seen, first/last seen) to issues."""
    return flush_counters(rt)
