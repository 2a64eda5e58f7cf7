"""Planning a job's slots under its catch-up policy: which slots to fire now, which to skip.

Pure: given the job, the last slot fired (the watermark) and the time, it says what to do, so the
scheduler's decisions can be tested without a clock or a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .spec import COUNT_CAP, JobSpec, to_utc

@dataclass(frozen=True)
class Plan:
    """What a scheduler does for one job at one instant: slots to fire (oldest first), the new
    watermark (every slot up to it is decided: fired, claimed or skipped) and how many it skipped."""

    fire: list[datetime]
    watermark: datetime | None
    skipped: int
    more_skipped: bool = False  # the skipped count hit COUNT_CAP (there were at least that many)


def plan(spec: JobSpec, watermark: datetime | None, now: datetime) -> Plan:
    """Decide which slots in ``(watermark, now]`` to fire under the job's catch-up policy.

    Only slots already *due* (``slot + jitter <= now``) count, and only a prefix of them in time
    order, so the watermark never passes a slot that is not due yet. A job seen for the first time
    (no watermark) is treated as ``skip``: deploying a daily job at noon does not run it at once.
    """
    now = to_utc(now)
    policy = spec.catch_up if watermark is not None else "skip"
    window = spec.max_catch_up + 1 if policy == "all" else 2
    newest_first: list[datetime] = []
    more = False
    for slot in spec.slots_back(now, watermark):
        if len(newest_first) == window:
            more = True
            break
        newest_first.append(slot)
    due: list[datetime] = []
    for slot in reversed(newest_first):
        if spec.due_at(slot) > now:
            break
        due.append(slot)
    if not due:
        return Plan([], watermark, 0)
    newest = due[-1]
    if policy == "all":
        fire = due[-spec.max_catch_up:]
    elif policy == "once":
        fire = [newest]
    else:
        late = (now - spec.due_at(newest)).total_seconds()
        fire = [newest] if late <= spec.effective_grace_s else []
    if watermark is None:  # first sight: nothing was missed, there is just a starting point
        return Plan(fire, newest, 0)
    total = spec.count_between(watermark, newest) if more else len(due)
    return Plan(fire, newest, total - len(fire), more_skipped=total >= COUNT_CAP)


