"""``eventpipe db``: the metadata database's schema."""

from __future__ import annotations

import click
import sqlalchemy.exc

from eventpipe.config import get_settings
from eventpipe.kvstore import redact_url
from eventpipe.metadata.db import Database
from eventpipe.metadata.migrate import current_heads

from ._common import ServiceUnavailable, emit_json, group, json_option


@group()
def db() -> None:
    """Metadata database."""


@db.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Apply every Alembic migration (safe to run repeatedly); print the revisions it is at."""
    database = Database(get_settings().resolved_database_url())
    url = redact_url(database.url)
    try:
        database.upgrade()
        heads = current_heads(database.engine)
    except sqlalchemy.exc.OperationalError as exc:
        raise ServiceUnavailable(f"cannot reach the database {url}: {exc.orig or exc}") from None
    finally:
        database.dispose()
    if as_json:
        emit_json({"database": url, "heads": heads})
    else:
        click.echo(f"database {url} at revision {', '.join(heads)}")


__all__ = ["db"]
