"""Migrations and models agree: upgrading an empty database to all heads yields exactly the
schema the models declare (alembic's own comparison), on SQLite and Postgres."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from eventpipe.metadata.db import Database
from eventpipe.metadata.models import Base


def test_migrations_match_models(db_url):
    db = Database(db_url)
    db.upgrade()
    db.upgrade()  # idempotent

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
