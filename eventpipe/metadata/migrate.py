"""Alembic, driven from code so `eventpipe db upgrade` works from an installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK_ID = 0x6576656E  # "even": one advisory lock id for every eventpipe process


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Apply migrations (``heads``: every subsystem's branch, each starting from 0001). On Postgres an advisory lock serializes processes that start at once
    (several workers on a fresh database would otherwise race to create alembic's table)."""
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), revision)
        return
    from sqlalchemy import text

    with engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            lock_conn.commit()


def current_heads(engine: Engine) -> list[str]:
    """The revisions the database is at, sorted: one per branch, since each subsystem's migrations
    branch from 0001 (alembic's ``get_current_revision`` refuses to answer when there are several)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return sorted(MigrationContext.configure(conn).get_current_heads())
