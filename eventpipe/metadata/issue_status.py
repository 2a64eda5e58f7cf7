"""Changing an issue's status by hand: resolve, unresolve, ignore.

A resolved issue that receives a new event regresses to unresolved (the save path does that);
ignored issues stay ignored. ``resolved_at`` is set on resolve and cleared otherwise.
"""

from __future__ import annotations

from sqlalchemy import update

from .db import Database, utcnow
from .models import Issue

STATUSES = ("unresolved", "resolved", "ignored")


def set_status(db: Database, issue_id: int, status: str) -> bool:
    """Set the status; True when it changed. Unknown statuses raise ValueError, unknown issues KeyError."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    with db.session() as s:
        if s.get(Issue, issue_id) is None:
            raise KeyError(f"no issue {issue_id}")
        n = s.execute(
            update(Issue).where(Issue.id == issue_id, Issue.status != status)
            .values(status=status, resolved_at=utcnow() if status == "resolved" else None)
        ).rowcount
    return bool(n)
