"""Alert rules stored in SQL: add, list, remove, and a short-lived per-process cache for the hot path.

``notify.evaluate_rules`` runs for saved events; reading a project's rules from SQL for each one
would cost a query per event, so workers keep them for a few seconds (a new rule takes effect
within that time, a removed one stops within it).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import AlertRule, Project
from eventpipe.pipeline.conditions import Condition, RuleError, parse_level, parse_when

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Rule:
    id: int
    project_id: int
    condition: Condition
    level: str | None
    emails: tuple[str, ...]
    webhooks: tuple[str, ...]
    throttle_minutes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "when": str(self.condition),
            "level": self.level,
            "emails": list(self.emails),
            "webhooks": list(self.webhooks),
            "throttle_minutes": self.throttle_minutes,
        }


def _from_row(row: AlertRule) -> Rule:
    return Rule(
        row.id,
        row.project_id,
        Condition(row.when, row.count, row.minutes),
        row.level,
        tuple(row.emails or ()),
        tuple(row.webhooks or ()),
        row.throttle_minutes,
    )


def add_rule(
    db: Database,
    project_id: int,
    when: str,
    *,
    level: str | None = None,
    emails: list[str] | tuple[str, ...] = (),
    webhooks: list[str] | tuple[str, ...] = (),
    throttle_minutes: int = 30,
) -> Rule:
    cond = parse_when(when)
    lvl = parse_level(level)
    if not emails and not webhooks:
        raise RuleError("a rule needs at least one --email ADDR or --webhook URL to notify")
    for addr in emails:
        if not _EMAIL.match(addr):
            raise RuleError(f"--email {addr!r}: not an email address (name@example.com)")
    for url in webhooks:
        if not url.startswith(("http://", "https://")):
            raise RuleError(f"--webhook {url!r}: use an http:// or https:// URL")
    if throttle_minutes < 0:
        raise RuleError("--throttle-minutes must be 0 (no throttle) or more")
    with db.session() as s:
        if s.get(Project, project_id) is None:
            raise RuleError(f"no project {project_id}; create it with `eventpipe projects add {project_id} NAME`")
        row = AlertRule(
            project_id=project_id,
            when=cond.kind,
            count=cond.count,
            minutes=cond.minutes,
            level=lvl,
            emails=list(emails),
            webhooks=list(webhooks),
            throttle_minutes=throttle_minutes,
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        rule = _from_row(row)
    _cache.clear()
    return rule


def list_rules(db: Database, project_id: int | None = None) -> list[Rule]:
    with db.session() as s:
        q = select(AlertRule).order_by(AlertRule.id)
        if project_id is not None:
            q = q.where(AlertRule.project_id == project_id)
        return [_from_row(r) for r in s.scalars(q)]


def remove_rule(db: Database, rule_id: int) -> bool:
    with db.session() as s:
        removed = s.execute(delete(AlertRule).where(AlertRule.id == rule_id)).rowcount
    _cache.clear()
    return bool(removed)


class _RuleCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, int], tuple[float, list[Rule]]] = {}

    def get(self, db: Database, project_id: int) -> list[Rule]:
        key = (db.url, project_id)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        rules = list_rules(db, project_id)
        with self._lock:
            self._entries[key] = (now, rules)
        return rules

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _RuleCache()


def project_rules(db: Database, project_id: int) -> list[Rule]:
    """The project's rules, at most a few seconds old."""
    return _cache.get(db, project_id)


EVERY_EVENT_KINDS = ("every_event", "frequency")


def watches_every_event(db: Database, project_id: int) -> bool:
    """Whether a rule of the project must see every saved event, not only first seen and
    regressions (cached with the rules)."""
    return any(r.condition.kind in EVERY_EVENT_KINDS for r in project_rules(db, project_id))
