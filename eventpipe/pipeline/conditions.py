"""Alert rule conditions: when a saved event (or a spike in the rollups) should notify.

Pure functions over plain values, no I/O: the notify tasks look up the facts (rules, how many
events an issue had in a window, when a rule last fired) and ask these functions what to do, so
the decisions are unit-testable and identical on every worker.

A rule's ``when`` is one of ``first_seen``, ``regression``, ``every_event``,
``frequency:N/MINUTES`` (the issue had at least N events in the last MINUTES) or
``spike:N/MINUTES`` (the project had at least N events in the last MINUTES, read from rollups by
``notify.spike_alert``). An optional level filter keeps events at or above that level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from eventpipe.errors import EventpipeError

KINDS = ("first_seen", "regression", "every_event", "frequency", "spike")
LEVELS = ("debug", "info", "warning", "error", "fatal")
_WINDOWED = re.compile(r"^(frequency|spike):(\d+)/(\d+)$")


class RuleError(EventpipeError, ValueError):
    """A rule is written wrongly; the message shows a valid form."""

    exit_code: ClassVar[int] = 2


@dataclass(frozen=True)
class Condition:
    kind: str
    count: int | None = None
    minutes: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.count}/{self.minutes}" if self.count is not None else self.kind

    @property
    def per_event(self) -> bool:
        """Evaluated for saved events (spike is evaluated periodically, per project)."""
        return self.kind != "spike"


def parse_when(text: str) -> Condition:
    """``first_seen`` | ``regression`` | ``every_event`` | ``frequency:N/MINUTES`` | ``spike:N/MINUTES``."""
    value = text.strip().lower().replace("-", "_")
    if value in ("first_seen", "regression", "every_event"):
        return Condition(value)
    m = _WINDOWED.match(value)
    if m:
        count, minutes = int(m.group(2)), int(m.group(3))
        if count < 1 or minutes < 1:
            raise RuleError(f"--when {text!r}: N and MINUTES must be at least 1, e.g. frequency:100/5")
        return Condition(m.group(1), count, minutes)
    raise RuleError(
        f"--when {text!r}: use first_seen, regression, every_event, frequency:N/MINUTES or spike:N/MINUTES "
        "(e.g. frequency:100/5 = 100 events of an issue within 5 minutes)"
    )


def parse_level(text: str | None) -> str | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value == "warn":
        value = "warning"
    if value not in LEVELS:
        raise RuleError(f"--level {text!r}: use one of {', '.join(LEVELS)}")
    return value


def level_passes(minimum: str | None, level: str) -> bool:
    """True when ``level`` is at or above ``minimum`` (unknown levels count as error)."""
    if minimum is None:
        return True
    rank = {name: i for i, name in enumerate(LEVELS)}
    return rank.get(level, rank["error"]) >= rank[minimum]


def matches(cond: Condition, minimum_level: str | None, *, kinds: Iterable[str], level: str, window_count: int | None = None) -> bool:
    """Whether a saved event satisfies a rule. ``kinds`` are the event's activity kinds
    (first_seen, regression); ``window_count`` is the issue's events in the rule's window,
    needed only for frequency rules (see :func:`needs_window_count`)."""
    if not cond.per_event or not level_passes(minimum_level, level):
        return False
    if cond.kind == "every_event":
        return True
    if cond.kind == "frequency":
        return window_count is not None and cond.count is not None and window_count >= cond.count
    return cond.kind in set(kinds)


def needs_window_count(cond: Condition) -> bool:
    return cond.kind == "frequency"


def spike_exceeded(cond: Condition, project_count: int) -> bool:
    return cond.kind == "spike" and cond.count is not None and project_count >= cond.count


def throttle_cutoff(now: datetime, throttle_minutes: int) -> datetime:
    """A rule fires again for an issue only if it last fired at or before this instant.
    The compare-and-set in SQL is ``UPDATE … WHERE last_fired_at <= cutoff``."""
    return now - timedelta(minutes=max(0, throttle_minutes))


def throttle_allows(last_fired: datetime | None, now: datetime, throttle_minutes: int) -> bool:
    return last_fired is None or last_fired <= throttle_cutoff(now, throttle_minutes)
