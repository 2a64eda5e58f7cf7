"""Shared by the tests and the scheduler subprocess script: the test task, a controllable clock,
the job set used for the concurrency runs and readers of what was enqueued. No pytest here."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dramatiq

from eventpipe.schedules.control import newest_due_slot
from eventpipe.schedules.spec import JobRegistry, JobSpec
from eventpipe.tasks.api import task

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime
    from eventpipe.schedules.scheduler import Scheduler

TEST_TASK = "schedtest.tick"
TEST_QUEUE = "schedtest"
T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)

RAN: list[dict[str, Any]] = []
_RAN_LOCK = threading.Lock()


@task(TEST_TASK, queue=TEST_QUEUE, max_retries=0)
def schedtest_tick(rt: Runtime, **kwargs: Any) -> None:
    """Test task: remembers that it ran."""
    with _RAN_LOCK:
        RAN.append(kwargs)


class FakeClock:
    """A controllable clock: returns ``now`` until moved."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, t: datetime) -> None:
        self.now = t

    def advance(self, seconds: float) -> datetime:
        self.now = self.now + timedelta(seconds=seconds)
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


def concurrency_jobs() -> JobRegistry:
    """Eight jobs: six 10-second jobs, a per-minute cron job and a jittered 20-second job."""
    specs = [JobSpec.build(TEST_TASK, every=10, name=f"every10.{i}", kwargs={"i": i}) for i in range(6)]
    specs.append(JobSpec.build(TEST_TASK, cron="* * * * *", name="cron.minutely"))
    specs.append(JobSpec.build(TEST_TASK, every=20, jitter_s=15, name="every20.jitter"))
    return JobRegistry(specs)


def timeline(steps: int, step_s: float = 10, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(seconds=step_s * i) for i in range(steps)]


def expected_slots(jobs: JobRegistry, start: datetime, end: datetime) -> set[tuple[str, str]]:
    """Slots that must fire once when schedulers tick from ``start`` to ``end`` (steps shorter than
    every period): the newest slot due at ``start`` (first sight) and every slot due after it."""
    out: set[tuple[str, str]] = set()
    for spec in jobs.all():
        first = newest_due_slot(spec, start)
        assert first is not None
        out.add((spec.name, first.isoformat()))
        for slot in spec.slots_between(first, end):
            if spec.due_at(slot) <= end:
                out.add((spec.name, slot.isoformat()))
    return out


def queued_messages(rt: Runtime, queue: str = TEST_QUEUE) -> list[dramatiq.Message]:
    """Messages waiting in an embedded-broker queue (not consumed)."""
    q = rt.broker.queues.get(rt.topology.queue(queue))
    if q is None:
        return []
    return [dramatiq.Message.decode(raw) for raw in list(q.queue)]


def message_slots(rts: Sequence[Runtime]) -> list[tuple[str, str]]:
    return [(m.options["schedule_job"], m.options["schedule_slot"]) for rt in rts for m in queued_messages(rt)]


def slot_counts(pairs: Sequence[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter(pairs)


def drive(
    schedulers: Sequence[tuple[Scheduler, FakeClock]],
    times: Sequence[datetime],
    *,
    max_ahead: int = 2,
    stop_when: dict[int, Callable[[int], bool]] | None = None,
) -> None:
    """Run each scheduler in its own thread through ``times`` as fast as it can: they race on every
    slot. Like real hosts, their clocks may disagree, but by at most ``max_ahead`` steps (well under
    the claim lease, which is what a lease assumes of clock skew). ``stop_when[i](step)`` makes
    scheduler ``i`` stop (die) at a step. Exceptions in a thread fail the caller."""
    errors: list[BaseException] = []
    progress = [0] * len(schedulers)
    done = [False] * len(schedulers)
    cond = threading.Condition()

    def run(index: int, sched: Scheduler, clock: FakeClock) -> None:
        try:
            for step, t in enumerate(times):
                with cond:
                    cond.wait_for(
                        lambda step=step: all(done[j] or progress[j] >= step - max_ahead for j in range(len(progress)))
                        or bool(errors)
                    )
                if errors:
                    return
                if stop_when and index in stop_when and stop_when[index](step):
                    return
                clock.set(t)
                sched.tick()
                with cond:
                    progress[index] = step + 1
                    cond.notify_all()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            with cond:
                done[index] = True
                cond.notify_all()

    threads = [threading.Thread(target=run, args=(i, s, c)) for i, (s, c) in enumerate(schedulers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
