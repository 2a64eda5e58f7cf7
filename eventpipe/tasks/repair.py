"""Repairs an operator triggers for one project: fold its pending counters now, rebuild its rollups.

``buffers.flush_project`` applies one project's buffered increments at once (before an export,
a report, or reading counts while the periodic flush is paused); it shares ``buffers.flush``'s
atomic claim (DELETE … RETURNING), so running beside it never counts an increment twice.
``rollups.backfill`` rebuilds every minute/hour/day bucket of a project from its stored events
(after an import, a restore, or a bug in an earlier rollup), each bucket recomputed whole, so a
rerun writes the same rows."""

from __future__ import annotations

from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.buffers import flush_counters
from eventpipe.tasks.rollups import recompute_project


@task("buffers.flush_project", queue="buffers", max_retries=3)
def flush_project(ctx: TaskContext, *, project_id: int) -> int:
    """Apply one project's pending counter increments now; returns the events counted."""
    return flush_counters(ctx, project_id=project_id)


@task("rollups.backfill", queue="rollups", max_retries=3)
def backfill(ctx: TaskContext, *, project_id: int) -> int:
    """Rebuild a project's rollup buckets from its stored events; returns rows written."""
    return recompute_project(ctx.db, project_id)
