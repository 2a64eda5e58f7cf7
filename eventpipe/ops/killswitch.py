"""Kill-switch rules, the operator's side: parse ``--where`` and store, list and remove rules.

A rule is ``task`` (an fnmatch pattern: ``events.*``) and ``where`` (kwargs that must all be equal,
e.g. ``{"project_id": 123}``). Equality is by JSON value, and a number matches its decimal string
(``--where project_id=123`` matches ``project_id=123`` and ``project_id="123"``), because the CLI
cannot know how producers typed the value. Workers apply the rules in
:class:`eventpipe.middleware.killswitch.KillSwitch`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from eventpipe.metadata.db import utcnow

from eventpipe.metadata.models import KillSwitchRule



def parse_where(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; value is read as JSON when it parses (``123``, ``true``, ``"x"``), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--where {item!r}: expected key=value, e.g. project_id=123")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


# Rule storage (CLI side) -------------------------------------------------------------------------
def add_rule(db: Any, task: str, where: dict[str, Any], reason: str = "") -> int:
    with db.session() as s:
        row = KillSwitchRule(task=task, where=where, reason=reason, created_at=utcnow(), dropped=0)
        s.add(row)
        s.flush()
        return int(row.id)


def remove_rule(db: Any, rule_id: int) -> bool:
    with db.session() as s:
        return bool(s.execute(delete(KillSwitchRule).where(KillSwitchRule.id == rule_id)).rowcount)


def list_rules(db: Any) -> list[dict[str, Any]]:
    with db.session() as s:
        return [
            {"id": r.id, "task": r.task, "where": r.where, "reason": r.reason,
             "created_at": r.created_at.isoformat() + "Z", "dropped": r.dropped}
            for r in s.scalars(select(KillSwitchRule).order_by(KillSwitchRule.id))
        ]
