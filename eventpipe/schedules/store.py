"""SQL reads and writes of scheduler state, shared by the scheduler loop and the operator commands.

Every write is a compare-and-set or an idempotent insert, so schedulers racing on the same rows
never move a watermark backwards or overwrite who fired a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from eventpipe.metadata.repo import insert_ignore
from eventpipe.metadata.models import KIND_SCHEDULED, ScheduleJob, ScheduleSlot
from eventpipe.schedules.spec import naive_utc, to_utc

_SLOTS: Any = ScheduleSlot.__table__
_JOBS: Any = ScheduleJob.__table__


def dialect_insert(session: Session) -> Any:
    """The INSERT construct with ON CONFLICT support for the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    raise NotImplementedError(f"scheduler state supports SQLite and Postgres, not {name}")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class JobState:
    job: str
    last_slot: datetime | None  # aware UTC watermark
    paused: bool


def ensure_jobs(session: Session, names: list[str], now: datetime) -> None:
    rows = [{"job": n, "last_slot": None, "paused": False, "updated_at": naive_utc(now)} for n in names]
    if rows:
        insert_ignore(session, ScheduleJob, rows, ["job"])


def load_states(session: Session, names: list[str]) -> dict[str, JobState]:
    if not names:
        return {}
    rows = session.execute(
        select(ScheduleJob.job, ScheduleJob.last_slot, ScheduleJob.paused).where(ScheduleJob.job.in_(names))
    ).all()
    return {
        job: JobState(job, to_utc(last) if last is not None else None, bool(paused)) for job, last, paused in rows
    }


_ADVANCE = (
    update(_JOBS)
    .where(
        _JOBS.c.job == bindparam("b_job"),
        or_(_JOBS.c.last_slot.is_(None), _JOBS.c.last_slot < bindparam("b_slot")),
    )
    .values(last_slot=bindparam("b_slot"), updated_at=bindparam("b_now"))
)


def advance_watermarks(session: Session, marks: dict[str, datetime], now: datetime) -> None:
    """Move several watermarks forward only, as one compiled statement executed for many rows."""
    if marks:
        now_n = naive_utc(now)
        session.connection().execute(
            _ADVANCE, [{"b_job": job, "b_slot": naive_utc(slot), "b_now": now_n} for job, slot in sorted(marks.items())]
        )


def advance_watermark(session: Session, job: str, slot: datetime, now: datetime) -> bool:
    """Move the watermark forward only (compare-and-set); True if it moved."""
    slot_n = naive_utc(slot)
    result = session.execute(
        update(ScheduleJob)
        .where(ScheduleJob.job == job, or_(ScheduleJob.last_slot.is_(None), ScheduleJob.last_slot < slot_n))
        .values(last_slot=slot_n, updated_at=naive_utc(now))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def record_fired(
    session: Session,
    *,
    job: str,
    task: str,
    slot: datetime,
    fired_at: datetime,
    fired_by: str,
    message_id: str | None,
    kind: str = KIND_SCHEDULED,
) -> bool:
    """Mark the slot fired: completes the claim row (SQL claims) or inserts it (Redis claims).
    The first record stands (``WHERE fired_at IS NULL``); returns False if it was already fired."""
    values: dict[str, Any] = {
        "job": job,
        "kind": kind,
        "slot": naive_utc(slot),
        "task": task,
        "claimed_by": fired_by,
        "claimed_at": naive_utc(fired_at),
        "lease_until": None,
        "attempts": 1,
        "fired_at": naive_utc(fired_at),
        "fired_by": fired_by,
        "message_id": message_id,
    }
    ins = dialect_insert(session)(_SLOTS).values(**values)
    stmt = ins.on_conflict_do_update(
        index_elements=["job", "kind", "slot"],
        set_={"fired_at": ins.excluded.fired_at, "fired_by": ins.excluded.fired_by, "message_id": ins.excluded.message_id},
        where=_SLOTS.c.fired_at.is_(None),
    ).returning(_SLOTS.c.job)
    # RETURNING, not rowcount: a row comes back only if this record won (rowcount is -1 for some
    # driver/statement combinations).
    return session.execute(stmt).first() is not None


def record_fired_many(session: Session, items: list[dict[str, Any]]) -> set[tuple[str, datetime]]:
    """Record several scheduled slots as fired in one statement; returns the (job, naive slot)
    pairs this call recorded first (``WHERE fired_at IS NULL`` on conflict, RETURNING)."""
    if not items:
        return set()
    rows = [
        {
            "job": it["job"],
            "kind": KIND_SCHEDULED,
            "slot": naive_utc(it["slot"]),
            "task": it["task"],
            "claimed_by": it["fired_by"],
            "claimed_at": naive_utc(it["fired_at"]),
            "lease_until": None,
            "attempts": 1,
            "fired_at": naive_utc(it["fired_at"]),
            "fired_by": it["fired_by"],
            "message_id": it["message_id"],
        }
        for it in items
    ]
    ins = dialect_insert(session)(_SLOTS).values(rows)
    stmt = ins.on_conflict_do_update(
        index_elements=["job", "kind", "slot"],
        set_={"fired_at": ins.excluded.fired_at, "fired_by": ins.excluded.fired_by, "message_id": ins.excluded.message_id},
        where=_SLOTS.c.fired_at.is_(None),
    ).returning(_SLOTS.c.job, _SLOTS.c.slot)
    return {(job, slot) for job, slot in session.connection().execute(stmt).all()}


def is_fired(session: Session, job: str, slot: datetime, kind: str = KIND_SCHEDULED) -> bool:
    fired = session.scalar(
        select(ScheduleSlot.fired_at).where(
            ScheduleSlot.job == job, ScheduleSlot.kind == kind, ScheduleSlot.slot == naive_utc(slot)
        )
    )
    return fired is not None


def fired_among(session: Session, slots: set[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """Which of these scheduled slots are already recorded as fired."""
    if not slots:
        return set()
    by_key = {(job, naive_utc(slot)): (job, slot) for job, slot in slots}
    rows = session.execute(
        select(ScheduleSlot.job, ScheduleSlot.slot).where(
            ScheduleSlot.kind == KIND_SCHEDULED,
            ScheduleSlot.fired_at.is_not(None),
            tuple_(ScheduleSlot.job, ScheduleSlot.slot).in_(list(by_key)),
        )
    ).all()
    return {by_key[(job, slot)] for job, slot in rows if (job, slot) in by_key}


def set_paused(session: Session, job: str, paused: bool, *, by: str, now: datetime, watermark: datetime | None = None) -> None:
    """Pause or resume. Resuming also moves the watermark to ``watermark`` (the newest slot due
    at resume time), so the slots that passed while paused are skipped, not caught up."""
    ensure_jobs(session, [job], now)
    values: dict[str, Any] = {
        "paused": paused,
        "paused_at": naive_utc(now) if paused else None,
        "paused_by": by if paused else None,
        "updated_at": naive_utc(now),
    }
    session.execute(update(ScheduleJob).where(ScheduleJob.job == job).values(**values))
    if not paused and watermark is not None:
        advance_watermark(session, job, watermark, now)


def job_rows(session: Session, names: list[str]) -> dict[str, dict[str, Any]]:
    """State plus last fired slot per job, for ``schedules list``."""
    out: dict[str, dict[str, Any]] = {n: {"last_slot": None, "paused": False, "paused_at": None, "paused_by": None} for n in names}
    if not names:
        return out
    for row in session.execute(select(ScheduleJob).where(ScheduleJob.job.in_(names))).scalars():
        out[row.job].update(
            {
                "last_slot": row.last_slot,
                "paused": bool(row.paused),
                "paused_at": row.paused_at,
                "paused_by": row.paused_by,
            }
        )
    last = session.execute(
        select(ScheduleSlot.job, func.max(ScheduleSlot.fired_at))
        .where(ScheduleSlot.job.in_(names), ScheduleSlot.fired_at.is_not(None))
        .group_by(ScheduleSlot.job)
    ).all()
    for job, fired_at in last:
        out[job]["last_fired_at"] = fired_at
    return out


def history(session: Session, *, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Fired slots, newest first."""
    q = select(ScheduleSlot).where(ScheduleSlot.fired_at.is_not(None))
    if job is not None:
        q = q.where(ScheduleSlot.job == job)
    q = q.order_by(ScheduleSlot.fired_at.desc(), ScheduleSlot.slot.desc()).limit(limit)
    return [
        {
            "job": r.job,
            "kind": r.kind,
            "slot": r.slot,
            "fired_at": r.fired_at,
            "scheduler": r.fired_by,
            "task": r.task,
            "message_id": r.message_id,
        }
        for r in session.execute(q).scalars()
    ]


def insert_manual(session: Session, *, job: str, task: str, at: datetime, by: str, message_id: str) -> None:
    session.execute(
        insert(ScheduleSlot).values(
            job=job,
            kind="manual",
            slot=naive_utc(at),
            task=task,
            claimed_by=by,
            claimed_at=naive_utc(at),
            lease_until=None,
            attempts=1,
            fired_at=naive_utc(at),
            fired_by=by,
            message_id=message_id,
        )
    )


def prune_history(session: Session, before: datetime) -> int:
    """Delete fired slots older than ``before`` (unfired claims are kept: they are still owed)."""
    result = session.execute(
        delete(ScheduleSlot).where(ScheduleSlot.fired_at.is_not(None), ScheduleSlot.fired_at < naive_utc(before))
    )
    return _rowcount(result)
