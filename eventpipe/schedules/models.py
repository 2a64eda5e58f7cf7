"""SQL state of the scheduler: one row per job (watermark, pause) and one row per slot.

``schedule_slots`` is both the SQL claim table and the history: with SQL claims a row is inserted
(unique ``(job, kind, slot)``) when a scheduler claims the slot and completed with ``fired_at`` once
the message is published; with Redis claims the row is written at fire time. A row whose
``fired_at`` is NULL is a claimed slot still owed a publish (retried by its owner, or by anyone once
``lease_until`` has passed). Times are naive UTC like the rest of the metadata.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from eventpipe.metadata.models import Base

KIND_SCHEDULED = "scheduled"
KIND_MANUAL = "manual"


class ScheduleJob(Base):
    """Per job: ``last_slot`` is the watermark (every slot up to it has been decided: fired, claimed
    or skipped by the catch-up policy), so a restart neither repeats nor skips slots; ``paused`` is
    read by every scheduler on every tick that has something due."""

    __tablename__ = "schedule_jobs"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_slot: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    paused_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ScheduleSlot(Base):
    """One slot of one job: claim (SQL mode) and history (both modes)."""

    __tablename__ = "schedule_slots"
    __table_args__ = (
        Index("ix_schedule_slots_fired_at", "fired_at"),
        Index("ix_schedule_slots_job_fired_at", "job", "fired_at"),
    )

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "scheduled" | "manual"
    slot: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    fired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    fired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
