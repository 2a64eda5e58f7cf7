"""The scheduler loop. Run as many as you like: each slot is claimed before it is published.

One tick, per job that may have something due:

1. read the job's watermark, pause flag and its claimed-but-unfired slots (one read transaction);
2. :func:`~eventpipe.schedules.plan.plan` the slots to fire under the catch-up policy;
3. claim them (plus any owed slots) and move the watermark forward, in one transaction for SQL
   claims — a crash before this commit leaves nothing decided, a crash after it leaves claims
   that the owner or, after the lease, anyone else will fire;
4. publish each won slot, then record it as fired (``schedule_slots.fired_at``) — the history.

A publish that fails keeps the claim and is retried on the next tick; a scheduler that dies
leaves its claims to others once their lease passes. The one window for a duplicate message is a
scheduler that stalls between publishing and recording for longer than the lease (``lease_s``,
default 60 s): every task is idempotent, so a second message has no second effect, and the history still shows one firing.

Between slots a scheduler does not touch the database: it knows from the watermark when the next
slot of each job can be due and only reads then (and every ``refresh_s`` to notice other
schedulers' abandoned claims), so N schedulers polling every second cost almost nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from eventpipe.schedules import store
from eventpipe.schedules.claims import SlotClaims, SlotRef, make_claims
from eventpipe.schedules.plan import Plan, plan
from eventpipe.schedules.spec import (
    JobRegistry,
    JobSpec,
    ScheduleError,
    epoch_ms,
    load_jobs,
    naive_utc,
    to_utc,
)
from eventpipe.tasks.api import registry as task_registry

if TYPE_CHECKING:
    from eventpipe.tasks.api import TaskContext

log = logging.getLogger("eventpipe.schedules")

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    return datetime.now(UTC)


def default_scheduler_id() -> str:
    """host:pid:random — unique per scheduler instance, readable in history."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class FiredSlot:
    job: str
    slot: datetime
    message_id: str
    task: str

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "slot": self.slot.isoformat(), "task": self.task, "message_id": self.message_id}


@dataclass
class _Published:
    task: str
    message_id: str
    at: datetime
    recorded: bool = False


@dataclass
class TickResult:
    """What one tick did; ``read`` is False when nothing could be due and the database was not touched."""

    now: datetime
    read: bool = False
    fired: list[FiredSlot] = field(default_factory=list)
    failed: list[tuple[str, datetime, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    paused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "fired": [f.as_dict() for f in self.fired],
            "failed": [{"job": j, "slot": s.isoformat(), "error": e} for j, s, e in self.failed],
            "skipped": self.skipped,
            "paused": self.paused,
        }


class Scheduler:
    """Fires the periodic jobs of ``jobs`` (default: every declared job) through ``rt.enqueue``.

    ``clock`` returns an aware UTC datetime (tests pass a controllable one); ``claims`` defaults to
    Redis when ``rt.settings.redis_url`` is set, else SQL.
    """

    def __init__(
        self,
        rt: TaskContext,
        *,
        clock: Clock | None = None,
        scheduler_id: str | None = None,
        claims: SlotClaims | None = None,
        jobs: JobRegistry | None = None,
        lease_s: float = 60.0,
        refresh_s: float = 30.0,
        history_days: float = 30.0,
    ) -> None:
        self.rt = rt
        self.clock: Clock = clock or utc_clock
        self.id = scheduler_id or default_scheduler_id()
        self.claims: SlotClaims = claims if claims is not None else make_claims(rt)
        self.jobs = jobs if jobs is not None else load_jobs()
        self.lease_s = lease_s
        self.refresh = timedelta(seconds=refresh_s)
        self.history = timedelta(days=history_days)
        unknown = [s for s in self.jobs.all() if s.task not in task_registry]
        if unknown:
            listed = ", ".join(f"{s.name!r} -> task {s.task!r}" for s in unknown)
            raise ScheduleError(
                f"periodic jobs name tasks that are not declared: {listed}; declare the task with "
                "@task(...) in a catalogue module, or fix the job's task name (see `eventpipe tasks list`)"
            )
        self._next_check: dict[str, datetime] = {}
        self._last_read: datetime | None = None
        self._owed: set[tuple[str, datetime]] = set()  # claimed by us, publish failed: retry
        self._unrecorded: dict[tuple[str, datetime], _Published] = {}  # published, not yet recorded
        self._last_prune: datetime | None = None
        self._lock = threading.Lock()

    # The loop ----------------------------------------------------------------------------------
    def run(self, stop_event: threading.Event, poll_s: float = 1.0, on_tick: Callable[[TickResult], None] | None = None) -> None:
        """Tick every ``poll_s`` until ``stop_event`` is set. A failing tick (database or Redis
        down) is logged and retried; claims make a retried tick safe."""
        log.info("scheduler %s started: %d jobs, claims %s", self.id, len(self.jobs), self.claims.describe())
        while not stop_event.is_set():
            try:
                result = self.tick()
                if on_tick is not None and (result.fired or result.failed):
                    on_tick(result)
            except Exception:  # noqa: BLE001 - keep scheduling through transient outages
                log.exception("scheduler %s: tick failed; retrying in %.1fs", self.id, poll_s)
            stop_event.wait(poll_s)
        log.info("scheduler %s stopped", self.id)

    def tick(self, now: datetime | None = None) -> TickResult:
        """Fire everything due at ``now`` (default: the clock). Safe to call concurrently from
        several schedulers; one instance is not re-entrant (guarded by a lock)."""
        with self._lock:
            return self._tick(to_utc(now if now is not None else self.clock()))

    def _needs_read(self, now: datetime, specs: list[JobSpec]) -> bool:
        if self._owed or self._unrecorded or self._last_read is None or now - self._last_read >= self.refresh:
            return True
        return any(self._next_check.get(s.name, now) <= now for s in specs)

    def _tick(self, now: datetime) -> TickResult:
        result = TickResult(now)
        specs = self.jobs.all()
        self._record_published()
        if not specs or not self._needs_read(now, specs):
            return result
        result.read = True
        names = [s.name for s in specs]
        by_name = {s.name: s for s in specs}
        # One transaction reads the state, claims and moves the watermarks: on SQLite it holds the
        # write lock throughout (BEGIN IMMEDIATE), on Postgres every claim is an atomic statement.
        with self.rt.db.session() as s:
            states = store.load_states(s, names)
            missing = [n for n in names if n not in states]
            if missing:
                store.ensure_jobs(s, missing, now)
            pending = self.claims.pending(s, names, self.id, now)
            plans, fresh, retry = self._plan_all(specs, states, pending, now, result)
            won = self.claims.claim(s, fresh, retry, self.id, now, self.lease_s) if fresh or retry else set()
            store.advance_watermarks(s, {job: p.watermark for job, p in plans.items() if p.watermark is not None}, now)
            # A Redis claim does not prove the slot unfired (its key may have expired after the
            # firing was recorded): SQL history decides.
            done = store.fired_among(s, won) if won and not self.claims.authoritative else set()
        self._last_read = now
        if done:
            self.claims.fired(sorted(done), self.id)
            won -= done
        # Owed slots someone else took over (or that were fired meanwhile) are no longer ours.
        self._owed &= won
        for job, slot in sorted(won, key=lambda js: (js[1], js[0])):
            self._publish(by_name[job], slot, result)
        self._record_published()
        self._maybe_prune(now)
        return result

    def _plan_all(
        self,
        specs: list[JobSpec],
        states: dict[str, store.JobState],
        pending: dict[str, list[datetime]],
        now: datetime,
        result: TickResult,
    ) -> tuple[dict[str, Plan], list[SlotRef], list[SlotRef]]:
        """Plans per job (only those that move the watermark), slots to claim for the first time
        and claimed-but-unfired slots to retry or take over."""
        plans: dict[str, Plan] = {}
        fresh: list[SlotRef] = []
        retry: list[SlotRef] = []
        for spec in specs:
            state = states.get(spec.name) or store.JobState(spec.name, None, False)
            if state.paused:
                result.paused.append(spec.name)
                self._next_check[spec.name] = spec.due_at(spec.next_after(now))
                continue
            try:
                p = plan(spec, state.last_slot, now)
            except Exception as exc:  # noqa: BLE001 - one broken job must not stop the others
                log.exception("job %s: cannot compute its slots", spec.name)
                result.failed.append((spec.name, now, f"{type(exc).__name__}: {exc}"))
                continue
            if p.watermark != state.last_slot:
                plans[spec.name] = p
            if p.skipped:
                result.skipped[spec.name] = p.skipped
                log.info(
                    "job %s: skipped %d%s missed slot(s) (catch_up=%s)",
                    spec.name, p.skipped, "+" if p.more_skipped else "", spec.catch_up,
                )
            again = set(pending.get(spec.name, ())) | {sl for j, sl in self._owed if j == spec.name}
            again = {sl for sl in again if (spec.name, sl) not in self._unrecorded}  # published already
            retry.extend(SlotRef(spec.name, spec.task, sl) for sl in sorted(again))
            fresh.extend(SlotRef(spec.name, spec.task, sl) for sl in p.fire if sl not in again)
            mark = p.watermark if p.watermark is not None else now
            self._next_check[spec.name] = spec.due_at(spec.next_after(max(mark, state.last_slot or mark)))
        return plans, fresh, retry

    # Firing ------------------------------------------------------------------------------------
    def _publish(self, spec: JobSpec, slot: datetime, result: TickResult) -> None:
        key = (spec.name, slot)
        now = to_utc(self.clock())
        options: dict[str, Any] = {
            "schedule_job": spec.name,
            "schedule_slot": slot.isoformat(),
            "scheduler_id": self.id,
        }
        if spec.expires_s is not None:
            options["expires_at"] = epoch_ms(now) + int(spec.expires_s * 1000)
        try:
            message_id = self.rt.enqueue(spec.task, options=options, **spec.kwargs)
        except Exception as exc:  # noqa: BLE001 - keep the claim, retry next tick
            self._owed.add(key)
            result.failed.append((spec.name, slot, f"{type(exc).__name__}: {exc}"))
            log.warning("job %s slot %s: publish failed (%s); will retry", spec.name, slot.isoformat(), exc)
            return
        self._owed.discard(key)
        result.fired.append(FiredSlot(spec.name, slot, message_id, spec.task))
        self._unrecorded[key] = _Published(spec.task, message_id, now)

    def _record_published(self) -> None:
        """Record every published-but-unrecorded slot in one transaction, then close the claims.
        If the database is down the messages are out already: only the record is retried."""
        if not self._unrecorded:
            return
        todo = [(k, p) for k, p in self._unrecorded.items() if not p.recorded]
        try:
            if todo:
                items = [
                    {"job": job, "slot": slot, "task": p.task, "fired_at": p.at, "fired_by": self.id, "message_id": p.message_id}
                    for (job, slot), p in todo
                ]
                with self.rt.db.session() as s:
                    first = store.record_fired_many(s, items)
                for (job, slot), p in todo:
                    p.recorded = True
                    if (job, naive_utc(slot)) not in first:
                        log.error("job %s slot %s was fired twice (a scheduler stalled past its lease?)", job, slot.isoformat())
            keys = sorted(self._unrecorded)
            self.claims.fired(keys, self.id)
            for key in keys:
                del self._unrecorded[key]
        except Exception:  # noqa: BLE001
            log.exception("%d published slot(s) not recorded yet; retrying the record next tick", len(self._unrecorded))

    def _maybe_prune(self, now: datetime) -> None:
        if self._last_prune is not None and now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        try:
            with self.rt.db.session() as s:
                n = store.prune_history(s, now - self.history)
            if n:
                log.info("pruned %d fired slots older than %s", n, self.history)
        except Exception:  # noqa: BLE001 - pruning is housekeeping
            log.exception("pruning schedule history failed")


def start_in_thread(rt: TaskContext, *, poll_s: float = 1.0, **kwargs: Any) -> tuple[threading.Thread, threading.Event]:
    """Run a scheduler in a daemon thread (the embedded mode); set the event to stop it, then join."""
    scheduler = Scheduler(rt, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop, poll_s), name="eventpipe-scheduler", daemon=True)
    thread.start()
    return thread, stop
