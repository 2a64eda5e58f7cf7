"""Small repository functions shared by tasks and commands: dialect-aware idempotent inserts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, literal_column
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, rows: Sequence[dict[str, Any]], conflict: Sequence[str]) -> int:
    """INSERT … ON CONFLICT DO NOTHING for SQLite and Postgres.

    Returns the rows actually inserted for a single row; for a batch the drivers do not report it
    reliably, so -1 ("unknown")."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - other databases: plain insert, callers catch IntegrityError
        return session.execute(insert(model), list(rows)).rowcount or 0
    table = getattr(model, "__table__", model)
    stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if len(rows) > 1:
        # Core executemany of one constant statement: the ORM's bulk path costs more than the rows
        session.connection().execute(stmt, list(rows))
        return -1
    # RETURNING yields a row only when the insert happened; rowcount is -1 under some drivers.
    result = session.execute(stmt.values(**rows[0]).returning(literal_column("1")))
    return 1 if result.first() is not None else 0
