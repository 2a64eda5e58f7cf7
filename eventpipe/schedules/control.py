"""Operator actions on periodic jobs, as plain functions of a runtime and an instant.

The CLI is a thin layer over these so tests (and the Python API) can drive them with a fake clock.
Every action is safe with any number of schedulers running: pause/resume are single-row writes
that each scheduler reads on its next due tick; run-now is an extra firing recorded in history
as kind ``manual`` and never touches the job's watermark.
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventpipe.schedules import store
from eventpipe.schedules.spec import JobRegistry, JobSpec, epoch_ms, load_jobs, to_utc
from eventpipe.tasks.api import registry as task_registry

if TYPE_CHECKING:
    from eventpipe.tasks.api import TaskContext


def operator_id() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def _now(now: datetime | None) -> datetime:
    return to_utc(now) if now is not None else datetime.now(UTC)


def _spec(jobs: JobRegistry | None, name: str) -> JobSpec:
    return (jobs if jobs is not None else load_jobs()).get(name)


def newest_due_slot(spec: JobSpec, now: datetime) -> datetime | None:
    """The newest slot whose due time (slot + jitter) is at or before ``now``."""
    for i, slot in enumerate(spec.slots_back(now, None)):
        if spec.due_at(slot) <= now:
            return slot
        if i >= 2:
            return None
    return None


def next_run(spec: JobSpec, now: datetime) -> datetime:
    """When the job next fires if nothing is paused: the due time of the first slot not yet due
    (with jitter, the newest slot at or before ``now`` may still be waiting)."""
    latest = next(iter(spec.slots_back(now, None)))
    if spec.due_at(latest) > now:
        return spec.due_at(latest)
    return spec.due_at(spec.next_after(now))


def list_jobs(rt: TaskContext, *, jobs: JobRegistry | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    registry = jobs if jobs is not None else load_jobs()
    t = _now(now)
    specs = registry.all()
    with rt.db.session() as s:
        rows = store.job_rows(s, [sp.name for sp in specs])
    out = []
    for sp in specs:
        row = rows[sp.name]
        out.append(
            {
                "job": sp.name,
                "task": sp.task,
                "spec": sp.describe(),
                "next_run": None if row["paused"] else next_run(sp, t),
                "last_run": row.get("last_fired_at"),
                "last_slot": row["last_slot"],
                "paused": row["paused"],
                "paused_by": row["paused_by"],
                "known_task": sp.task in task_registry,
            }
        )
    return out


def pause(rt: TaskContext, name: str, *, jobs: JobRegistry | None = None, now: datetime | None = None, by: str | None = None) -> dict[str, Any]:
    spec = _spec(jobs, name)
    t = _now(now)
    with rt.db.session() as s:
        store.set_paused(s, spec.name, True, by=by or operator_id(), now=t)
    return {"job": spec.name, "paused": True, "at": t}


def resume(rt: TaskContext, name: str, *, jobs: JobRegistry | None = None, now: datetime | None = None, by: str | None = None) -> dict[str, Any]:
    """Resume; the slots that passed while paused are skipped (the watermark moves to now)."""
    spec = _spec(jobs, name)
    t = _now(now)
    with rt.db.session() as s:
        store.set_paused(s, spec.name, False, by=by or operator_id(), now=t, watermark=newest_due_slot(spec, t))
    return {"job": spec.name, "paused": False, "at": t, "next_run": next_run(spec, t)}


def run_now(rt: TaskContext, name: str, *, jobs: JobRegistry | None = None, now: datetime | None = None, by: str | None = None) -> dict[str, Any]:
    """Publish the job's task once, now, whatever its schedule or pause state; recorded in history."""
    spec = _spec(jobs, name)
    t = _now(now)
    who = by or operator_id()
    options: dict[str, Any] = {"schedule_job": spec.name, "schedule_slot": t.isoformat(), "scheduler_id": who, "manual": True}
    if spec.expires_s is not None:
        options["expires_at"] = epoch_ms(t) + int(spec.expires_s * 1000)
    message_id = rt.enqueue(spec.task, options=options, **spec.kwargs)
    with rt.db.session() as s:
        store.insert_manual(s, job=spec.name, task=spec.task, at=t, by=who, message_id=message_id)
    return {"job": spec.name, "task": spec.task, "message_id": message_id, "at": t}


def history(rt: TaskContext, *, job: str | None = None, limit: int = 50, jobs: JobRegistry | None = None) -> list[dict[str, Any]]:
    if job is not None:
        registry = jobs if jobs is not None else load_jobs()
        if job not in registry:
            with rt.db.session() as s:
                rows = store.history(s, job=job, limit=limit)
            if not rows:
                registry.get(job)  # raises UnknownJob naming the known jobs
            return rows
    with rt.db.session() as s:
        return store.history(s, job=job, limit=limit)


def apply_periodic_now(rt: TaskContext) -> None:
    """Flush buffered counters and roll up the last two days now, inline, as the scheduled jobs
    would: ``eventpipe stats --flush`` and ``demo`` use it so their totals are current."""
    from eventpipe.tasks.buffers import flush_counters
    from eventpipe.tasks.rollups import daily, hourly

    flush_counters(rt)
    hourly(rt, lookback_hours=48)
    daily(rt, lookback_hours=48)
