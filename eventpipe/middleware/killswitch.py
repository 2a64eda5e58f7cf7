"""The kill-switch middleware: workers drop messages matching an operator's rule before they run.

A rule is ``task`` (an fnmatch pattern: ``events.*``) and ``where`` (kwargs that must all be equal,
e.g. ``{"project_id": 123}``); rules are written with ``eventpipe ops killswitch`` (see
:mod:`eventpipe.ops.killswitch`). For a batch task the rule applies to each *item* of the message:
matching items are removed before the task runs, and a message left with no item is skipped.
Rules are read from SQL at most every ``CACHE_S`` seconds per process; drops are logged, counted
in-process, in Prometheus (``eventpipe_killswitch_dropped_total``) and in the rule's ``dropped``
column, in batches when the rules are next read.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from dramatiq.middleware import Middleware, SkipMessage
from sqlalchemy import select, update

from eventpipe.metadata.db import Database
from eventpipe.metadata.flags import CACHE_S
from eventpipe.metadata.models import KillSwitchRule

log = logging.getLogger("eventpipe.killswitch")


@dataclass(frozen=True)
class Rule:
    id: int
    task: str
    where: dict[str, Any]

    def matches(self, task: str, kwargs: dict[str, Any]) -> bool:
        if not fnmatch.fnmatchcase(task, self.task):
            return False
        for key, want in self.where.items():
            if key not in kwargs:
                return False
            have = kwargs[key]
            if have != want and _scalar_text(have) != _scalar_text(want):
                return False
        return True


def _scalar_text(v: Any) -> str | None:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int | float | str):
        return str(v)
    return json.dumps(v, sort_keys=True)


def load_rules(db: Any) -> list[Rule]:
    with db.session() as s:
        return [Rule(int(r.id), r.task, dict(r.where or {})) for r in s.scalars(select(KillSwitchRule))]


# The middleware ----------------------------------------------------------------------------------
class KillSwitch(Middleware):
    """Drops messages matched by a kill-switch rule before they run (see module docstring);
    ``db`` is the runtime's database, where the rules live."""

    def __init__(self, db: Database, *, ttl: float = CACHE_S) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._loaded_at = float("-inf")
        self._pending: Counter[int] = Counter()
        self.dropped: Counter[int] = Counter()
        self._metric = _dropped_metric()

    def rules(self) -> list[Rule]:
        now = time.monotonic()
        if now - self._loaded_at < self.ttl:
            return self._rules
        with self._lock:
            if now - self._loaded_at < self.ttl:
                return self._rules
            try:
                db = self.db
                self._flush(db)
                self._rules = load_rules(db)
            except Exception:
                log.warning("could not read kill-switch rules; keeping the last ones", exc_info=True)
            self._loaded_at = now
            return self._rules

    def _flush(self, db: Any) -> None:
        pending, self._pending = self._pending, Counter()
        if not pending:
            return
        try:
            with db.session() as s:
                for rule_id, n in pending.items():
                    s.execute(update(KillSwitchRule).where(KillSwitchRule.id == rule_id)
                              .values(dropped=KillSwitchRule.dropped + n))
        except Exception:
            self._pending.update(pending)
            raise

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        """Refresh rules (and flush drop counts) in the background, so a new rule applies within
        ~``ttl`` even to the first message after it, and counts reach SQL without new messages."""
        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(max(self.ttl, 0.5)):
                self._loaded_at = float("-inf")
                self.rules()

        threading.Thread(target=loop, name="eventpipe-killswitch", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        try:
            with self._lock:
                self._flush(self.db)
        except Exception:  # counts are best effort; the worker is stopping anyway
            log.warning("could not record kill-switch drop counts at shutdown", exc_info=True)

    def match(self, task: str, kwargs: dict[str, Any]) -> Rule | None:
        for rule in self.rules():
            if rule.matches(task, kwargs):
                return rule
        return None

    def before_process_message(self, broker: Any, message: Any) -> None:
        if not self.rules():  # the common case: no rule, nothing to look at
            return
        kwargs = message.kwargs or {}
        items = kwargs.get("items")
        if isinstance(items, list) and set(kwargs) == {"items"}:  # a batch: judge each item
            kept = []
            for item in items:
                rule = self.match(message.actor_name, item) if isinstance(item, dict) else None
                if rule is None:
                    kept.append(item)
                else:
                    self._count(rule, message)
            if len(kept) == len(items):
                return
            items[:] = kept  # the task receives only the items no rule matched
            if kept:
                return
            raise SkipMessage("kill switch: every item of the batch matched")
        rule = self.match(message.actor_name, dict(kwargs))
        if rule is None:
            return
        self._count(rule, message)
        raise SkipMessage(f"kill switch {rule.id}")

    def _count(self, rule: Rule, message: Any) -> None:
        with self._lock:
            self.dropped[rule.id] += 1
            self._pending[rule.id] += 1
        if self._metric is not None:
            self._metric.labels(task=message.actor_name, rule=str(rule.id)).inc()
        log.warning("kill switch %d dropped %s %s (kwargs %s)", rule.id, message.actor_name, message.message_id,
                    sorted(rule.where))


def _dropped_metric() -> Any:
    try:
        from eventpipe.middleware.metrics import KILLSWITCH_DROPPED
    except ImportError:  # prometheus-client not installed: counting stays in-process and in SQL
        return None
    return KILLSWITCH_DROPPED
