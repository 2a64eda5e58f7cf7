"""Cron monitors: which scheduled runs were missed or failed, judged from check-ins. No I/O.

A monitor expects a check-in at each slot of its cron schedule (UTC). A slot is judged once
``margin`` has passed after it: it is fine when an ``ok`` check-in arrived within ``margin`` of
the slot, failed when an ``error`` check-in did, and missed when none did. Every ``error``
check-in is a failure on its own as well, whenever it arrives (a job that runs more often than
its schedule still reports its failures).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from croniter import croniter

from eventpipe.errors import EventpipeError

STATUSES = ("ok", "error", "in_progress")
_STATUS_ALIASES = {"ok": "ok", "success": "ok", "error": "error", "failed": "error", "failure": "error", "in_progress": "in_progress", "in-progress": "in_progress"}


class MonitorError(EventpipeError, ValueError):
    """A monitor or check-in is written wrongly; the message says the valid form."""

    exit_code: ClassVar[int] = 2


@dataclass(frozen=True)
class CheckInFact:
    received_at: datetime
    status: str


@dataclass(frozen=True)
class Failure:
    at: datetime  # the slot (missed) or the check-in time (error)
    reason: str  # "missed" | "error"

    @property
    def key(self) -> str:
        return f"{self.reason}:{self.at:%Y%m%d%H%M}"


def validate_schedule(expr: str) -> str:
    expr = " ".join(expr.split())
    if not croniter.is_valid(expr):
        raise MonitorError(f"--schedule {expr!r}: not a cron expression; e.g. '0 * * * *' (hourly) or '*/15 * * * *'")
    return expr


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100]
    if not slug:
        raise MonitorError(f"monitor name {name!r}: use letters or digits (the slug is derived from it)")
    return slug


def normalize_status(status: str) -> str:
    value = _STATUS_ALIASES.get(status.strip().lower())
    if value is None:
        raise MonitorError(f"check-in status {status!r}: use ok, error or in_progress")
    return value


def slots_between(schedule: str, after: datetime, until: datetime, limit: int = 1000) -> list[datetime]:
    """Cron slots s with after < s <= until."""
    it = croniter(schedule, after)
    out: list[datetime] = []
    while len(out) < limit:
        s = it.get_next(datetime)
        if s > until:
            break
        out.append(s)
    return out


def judge(
    schedule: str, margin: timedelta, checked_until: datetime, now: datetime, checkins: Sequence[CheckInFact]
) -> tuple[list[Failure], datetime]:
    """Failures since ``checked_until`` and the new watermark. Slots are judged once ``margin``
    has passed after them; error check-ins received in (checked_until, now] are failures."""
    failures: list[Failure] = []
    horizon = now - margin
    for slot in slots_between(schedule, checked_until - margin, horizon):
        near = [c for c in checkins if slot - margin <= c.received_at <= slot + margin]
        if not any(c.status in ("ok", "error") for c in near):
            failures.append(Failure(slot, "missed"))
    for c in checkins:
        if c.status == "error" and checked_until < c.received_at <= now:
            failures.append(Failure(c.received_at, "error"))
    return sorted(failures, key=lambda f: f.at), now
