"""SQL state of the operator tooling: drained nodes, closed queues, kill-switch rules.

Why SQL: every publisher, worker and ``eventpipe ops`` invocation already shares the metadata
database, so a flag written here reaches every process (each caches it ~2 s) with no extra service,
and it survives restarts of the processes that honour it. Tables are created by migration
``0004_ops``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eventpipe.metadata.models import Base, BigIntPK


class DrainedNode(Base):
    """A RabbitMQ node (``HOST:PORT``) publishers must not use (``eventpipe ops drain --node``)."""

    __tablename__ = "ops_drained_nodes"

    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    drained_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class ClosedQueue(Base):
    """A logical queue that refuses new work (``eventpipe ops drain --queue``); retries of
    messages already in the system are still accepted so nothing in flight is lost."""

    __tablename__ = "ops_closed_queues"

    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class KillSwitchRule(Base):
    """Workers drop messages whose task matches ``task`` (fnmatch pattern) and whose kwargs equal
    every ``where`` item. ``dropped`` is incremented by workers (batched, best effort)."""

    __tablename__ = "ops_killswitches"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(200))
    where: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)


__all__ = ["ClosedQueue", "DrainedNode", "KillSwitchRule"]
