"""Declaring periodic jobs: ``periodic("rollups.hourly", cron="5 * * * *")`` next to the task.

A job is pure data (:class:`JobSpec`); everything a scheduler decides about it is a deterministic
function of the spec and two instants (the job's watermark and "now"), so any number of schedulers
that read the same watermark compute the same slots. A *slot* is one scheduled instant of one job,
identified by ``(job name, UTC instant)``; that identity is what schedulers claim.

* ``every``: slots on a grid aligned to the Unix epoch (``every="5m"`` fires at :00, :05, ... UTC),
  so schedulers started at different times agree on the grid without talking to each other.
* ``cron``: slots from croniter evaluated in ``tz`` (zoneinfo). DST is the library's: a wall time
  that does not exist (spring forward) moves to the first valid time after it, a wall time that
  happens twice (fall back) fires at both instants. Slots are stored as UTC instants, so the two
  fall-back instants are two distinct slots.
* ``jitter_s``: a slot becomes due at ``slot + jitter(slot)`` where ``jitter`` is a hash of the job
  name and slot, so every scheduler waits the same amount and the claim still dedupes.
* ``expires_s``: the message carries ``expires_at`` (epoch milliseconds) in its options;
  :class:`eventpipe.middleware.expiry.SlotExpiry` drops it if a worker picks it up later than that.
* ``catch_up`` after downtime (several slots due at once): ``"skip"`` fires only the newest slot and
  only while it is still within ``grace_s`` of its due time; ``"once"`` fires the newest slot
  whatever its age (one run stands for all missed ones); ``"all"`` fires every missed slot, the
  newest ``max_catch_up`` of them, oldest first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventpipe.errors import EventpipeError, UnknownJob

CatchUp = Literal["skip", "once", "all"]
CATCH_UP_POLICIES: tuple[str, ...] = ("skip", "once", "all")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_GRACE_S = 60.0
COUNT_CAP = 10_000  # counting skipped cron slots stops here (a log line, not a decision)
_US = 1_000_000

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


class ScheduleError(EventpipeError, ValueError):
    """A periodic job is declared wrongly; the message names the job, the field and a valid form."""


def parse_duration(value: float | int | str, *, what: str = "duration") -> float:
    """Seconds from a number or a string like ``"10s"``, ``"5m"``, ``"1h30m"``, ``"2d"``."""
    if isinstance(value, bool):
        raise ScheduleError(f"{what}: expected seconds or a string like '10s', '5m', '1h30m'; got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ScheduleError(f"{what}: empty; use seconds or a string like '10s', '5m', '1h30m'")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ScheduleError(f"{what}: cannot read {value!r}; use seconds or a string like '10s', '5m', '1h30m', '2d'")
    return total


def to_utc(dt: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to be UTC (that is how SQL stores times)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def naive_utc(dt: datetime) -> datetime:
    """The naive-UTC form used in SQL columns."""
    return to_utc(dt).replace(tzinfo=None)


def epoch_ms(dt: datetime) -> int:
    return (to_utc(dt) - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class JobSpec:
    """One periodic job. Build with :func:`periodic` (registers) or :meth:`JobSpec.build` (does not)."""

    name: str
    task: str
    every_s: float | None = None
    cron: str | None = None
    tz: str = "UTC"
    jitter_s: float = 0.0
    expires_s: float | None = None
    catch_up: CatchUp = "skip"
    max_catch_up: int = 100
    kwargs: dict[str, Any] = field(default_factory=dict)
    grace_s: float | None = None

    # Construction ------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        task_name: str,
        *,
        every: float | int | str | None = None,
        cron: str | None = None,
        tz: str = "UTC",
        jitter_s: float | int | str = 0,
        expires_s: float | int | str | None = None,
        catch_up: str = "skip",
        max_catch_up: int = 100,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        grace_s: float | int | str | None = None,
    ) -> JobSpec:
        """Validate and build a spec; every error names the job and what a valid value looks like."""
        job = name or task_name
        where = f"periodic job {job!r}"
        if not task_name or not isinstance(task_name, str):
            raise ScheduleError(f"{where}: task_name must be a task's name, e.g. 'rollups.hourly'")
        if len(job) > 200:
            raise ScheduleError(f"{where}: job names are at most 200 characters")
        if (every is None) == (cron is None):
            raise ScheduleError(f"{where}: give exactly one of every= (e.g. '10s') or cron= (e.g. '5 * * * *')")
        every_s: float | None = None
        if every is not None:
            every_s = parse_duration(every, what=f"{where}: every")
            if every_s < 1 or abs(every_s * _US - round(every_s * _US)) > 1e-6:
                raise ScheduleError(f"{where}: every must be at least 1 second; got {every!r}")
        if cron is not None:
            from croniter import croniter

            if not isinstance(cron, str) or not croniter.is_valid(cron):
                raise ScheduleError(
                    f"{where}: cron {cron!r} is not a valid cron expression; use 5 fields "
                    "'minute hour day-of-month month day-of-week', e.g. '0 12 * * MON'"
                )
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ScheduleError(f"{where}: unknown time zone {tz!r}; use an IANA name like 'Europe/Berlin' or 'UTC'") from None
        jitter = parse_duration(jitter_s, what=f"{where}: jitter_s")
        if jitter < 0:
            raise ScheduleError(f"{where}: jitter_s must be >= 0; got {jitter_s!r}")
        if every_s is not None and jitter >= every_s:
            raise ScheduleError(f"{where}: jitter_s ({jitter:g}s) must be smaller than every ({every_s:g}s)")
        expires = None if expires_s is None else parse_duration(expires_s, what=f"{where}: expires_s")
        if expires is not None and expires <= 0:
            raise ScheduleError(f"{where}: expires_s must be > 0 or None (never expires); got {expires_s!r}")
        if catch_up not in CATCH_UP_POLICIES:
            raise ScheduleError(f"{where}: catch_up must be one of {', '.join(CATCH_UP_POLICIES)}; got {catch_up!r}")
        if not isinstance(max_catch_up, int) or max_catch_up < 1:
            raise ScheduleError(f"{where}: max_catch_up must be a positive integer; got {max_catch_up!r}")
        grace = None if grace_s is None else parse_duration(grace_s, what=f"{where}: grace_s")
        if grace is not None and grace <= 0:
            raise ScheduleError(f"{where}: grace_s must be > 0; got {grace_s!r}")
        kw = dict(kwargs or {})
        reserved = {"options", "delay_ms", "task_name"} & set(kw)
        if reserved:
            raise ScheduleError(f"{where}: kwargs may not use the names {sorted(reserved)} (reserved by Runtime.enqueue)")
        try:
            import json

            json.dumps(kw)
        except (TypeError, ValueError) as exc:
            raise ScheduleError(f"{where}: kwargs must be JSON values ({exc})") from None
        return cls(
            name=job,
            task=task_name,
            every_s=every_s,
            cron=cron,
            tz=tz,
            jitter_s=jitter,
            expires_s=expires,
            catch_up=catch_up,  # type: ignore[arg-type]
            max_catch_up=max_catch_up,
            kwargs=kw,
            grace_s=grace,
        )

    # Description -------------------------------------------------------------------------------
    def describe(self) -> str:
        """The schedule in words, for ``schedules list``."""
        if self.every_s is not None:
            base = f"every {_fmt_seconds(self.every_s)}"
        else:
            base = f"cron '{self.cron}'" + ("" if self.tz == "UTC" else f" {self.tz}")
        extras = []
        if self.jitter_s:
            extras.append(f"jitter {_fmt_seconds(self.jitter_s)}")
        if self.expires_s is not None:
            extras.append(f"expires {_fmt_seconds(self.expires_s)}")
        if self.catch_up != "skip":
            extras.append(f"catch-up {self.catch_up}" + (f" (max {self.max_catch_up})" if self.catch_up == "all" else ""))
        return base + (f" ({', '.join(extras)})" if extras else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.name,
            "task": self.task,
            "every_s": self.every_s,
            "cron": self.cron,
            "tz": self.tz,
            "jitter_s": self.jitter_s,
            "expires_s": self.expires_s,
            "catch_up": self.catch_up,
            "max_catch_up": self.max_catch_up,
            "grace_s": self.effective_grace_s,
            "kwargs": self.kwargs,
            "spec": self.describe(),
        }

    @property
    def effective_grace_s(self) -> float:
        """How late a slot may fire under ``catch_up="skip"``: ``grace_s``, else ``expires_s``
        (a message that would be dropped on arrival is not worth sending), else 60 s."""
        if self.grace_s is not None:
            return self.grace_s
        return self.expires_s if self.expires_s is not None else DEFAULT_GRACE_S

    # Slot arithmetic ---------------------------------------------------------------------------
    def jitter(self, slot: datetime) -> timedelta:
        """Deterministic per slot: every scheduler derives the same delay from (job, slot)."""
        if not self.jitter_s:
            return timedelta(0)
        digest = hashlib.sha256(f"{self.name}|{epoch_ms(slot)}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return timedelta(microseconds=int(fraction * self.jitter_s * _US))

    def due_at(self, slot: datetime) -> datetime:
        return to_utc(slot) + self.jitter(slot)

    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly after ``t`` (aware UTC)."""
        t = to_utc(t)
        if self.every_s is not None:
            step = round(self.every_s * _US)
            k = (t - EPOCH) // timedelta(microseconds=1) // step + 1
            return EPOCH + timedelta(microseconds=k * step)
        return to_utc(self._cron(t).get_next(datetime))

    def slots_back(self, now: datetime, after: datetime | None) -> Iterator[datetime]:
        """Slots ``s`` with ``after < s <= now``, newest first (aware UTC). Walking backwards lets a
        scheduler look at only the newest few slots after a long downtime."""
        now = to_utc(now)
        lower = to_utc(after) if after is not None else None
        if self.every_s is not None:
            step = round(self.every_s * _US)
            k = (now - EPOCH) // timedelta(microseconds=1) // step
            while True:
                slot = EPOCH + timedelta(microseconds=k * step)
                if lower is not None and slot <= lower:
                    return
                yield slot
                k -= 1
        else:
            # croniter's get_prev is strictly before its start: start 1 µs after now to include now.
            it = self._cron(now + timedelta(microseconds=1))
            while True:
                slot = to_utc(it.get_prev(datetime))
                if lower is not None and slot <= lower:
                    return
                yield slot

    def slots_between(self, after: datetime, until: datetime, *, limit: int = 100_000) -> list[datetime]:
        """Slots in ``(after, until]``, oldest first, walking forwards (tests, previews)."""
        out: list[datetime] = []
        t = to_utc(after)
        end = to_utc(until)
        while len(out) < limit:
            t = self.next_after(t)
            if t > end:
                break
            out.append(t)
        return out

    def count_between(self, after: datetime, until: datetime) -> int:
        """How many slots lie in ``(after, until]`` (exact for intervals, capped at COUNT_CAP for cron)."""
        after, until = to_utc(after), to_utc(until)
        if until <= after:
            return 0
        if self.every_s is not None:
            step = round(self.every_s * _US)
            us = timedelta(microseconds=1)
            return (until - EPOCH) // us // step - (after - EPOCH) // us // step
        return len(self.slots_between(after, until, limit=COUNT_CAP))

    def _cron(self, start: datetime) -> Any:
        from croniter import croniter

        return croniter(self.cron, start.astimezone(ZoneInfo(self.tz)))


def _fmt_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class JobRegistry:
    """Every declared periodic job by name. ``periodic()`` adds to the process-wide :data:`jobs`."""

    def __init__(self, specs: list[JobSpec] | None = None) -> None:
        self._jobs: dict[str, JobSpec] = {}
        for spec in specs or []:
            self.add(spec)

    def add(self, spec: JobSpec) -> JobSpec:
        existing = self._jobs.get(spec.name)
        if existing is not None and existing != spec:
            raise ScheduleError(
                f"periodic job {spec.name!r} is declared twice with different specs "
                f"({existing.describe()} vs {spec.describe()}); give one of them name=..."
            )
        self._jobs[spec.name] = spec
        return spec

    def get(self, name: str) -> JobSpec:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJob(name, list(self._jobs)) from None

    def all(self) -> list[JobSpec]:
        return sorted(self._jobs.values(), key=lambda s: s.name)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)


jobs = JobRegistry()


def periodic(
    task_name: str,
    *,
    every: float | int | str | None = None,
    cron: str | None = None,
    tz: str = "UTC",
    jitter_s: float | int | str = 0,
    expires_s: float | int | str | None = None,
    catch_up: str = "skip",
    max_catch_up: int = 100,
    kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    grace_s: float | int | str | None = None,
    registry: JobRegistry | None = None,
) -> JobSpec:
    """Declare a periodic job for ``task_name`` (job name defaults to the task name) and register it."""
    spec = JobSpec.build(
        task_name,
        every=every,
        cron=cron,
        tz=tz,
        jitter_s=jitter_s,
        expires_s=expires_s,
        catch_up=catch_up,
        max_catch_up=max_catch_up,
        kwargs=kwargs,
        name=name,
        grace_s=grace_s,
    )
    return (registry if registry is not None else jobs).add(spec)


def load_jobs() -> JobRegistry:
    """Every periodic job: the schedules declared beside their tasks (``@task(every=...)``, for the
    catalogue and every task module already loaded) and plugins' (entry point group
    ``eventpipe.schedules``)."""
    from importlib.metadata import entry_points

    from eventpipe.tasks.api import load_catalogue

    for declared in load_catalogue().all():
        if declared.schedule and declared.name not in jobs:
            periodic(declared.name, **declared.schedule)
    for ep in entry_points(group="eventpipe.schedules"):
        ep.load()
    return jobs
