"""SQL metadata: models, engine/session setup, migrations and small repository functions."""

from .db import Database, utcnow

__all__ = ["Database", "utcnow"]
