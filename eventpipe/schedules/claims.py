"""Slot claims: the one atomic step that makes N schedulers fire each slot exactly once.

A scheduler claims ``(job, slot)`` *before* publishing. Exactly one claim succeeds; the winner
publishes and then records the slot as fired in SQL (``schedule_slots.fired_at``), which is the
authoritative history. A claim carries a lease: if the winner cannot publish (broker down) it keeps
the claim and retries on its next tick; if it died, any scheduler may take the claim over once the
lease has passed (measured on the scheduler's clock, so tests drive it with a fake clock).
Claimed-but-unfired slots are listed by :meth:`SlotClaims.pending` so they are retried even after
the watermark has moved past them.

Two implementations, same contract:

* :class:`SqlClaims` (default): a unique row per slot, ``INSERT … ON CONFLICT DO NOTHING``; a
  takeover is a compare-and-set ``UPDATE … WHERE fired_at IS NULL AND (claimed_by = me OR
  lease_until < now)``. A successful claim therefore also proves the slot is not fired.
* :class:`RedisClaims` (when ``EVENTPIPE_REDIS_URL`` is set): ``SET key value NX PX lease`` in a Lua
  script that also adds the slot to a per-job pending set, atomically. A Redis claim says nothing
  about SQL history, so the scheduler re-checks history after winning (``authoritative = False``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from eventpipe.metadata.repo import insert_ignore
from eventpipe.metadata.models import KIND_SCHEDULED, ScheduleSlot
from eventpipe.schedules.spec import EPOCH, epoch_ms, naive_utc, to_utc
from eventpipe.schedules.store import dialect_insert


@dataclass(frozen=True)
class SlotRef:
    """One slot to claim: job name, its task (for the SQL row) and the UTC instant."""

    job: str
    task: str
    slot: datetime  # aware UTC


class SlotClaims(Protocol):
    #: True when a successful claim proves the slot has not fired yet (SQL); False: check history.
    authoritative: bool

    def claim(
        self, session: Session, fresh: Sequence[SlotRef], retry: Sequence[SlotRef], owner: str, now: datetime, lease_s: float
    ) -> set[tuple[str, datetime]]:
        """Claim slots for ``owner``; returns the ``(job, slot)`` pairs won. ``fresh`` slots are new
        (only an unclaimed slot can be won); ``retry`` slots were claimed before and are re-entered
        by their owner (renewing the lease) or taken over once the lease ended before ``now``."""
        ...

    def pending(self, session: Session, jobs: Iterable[str], owner: str, now: datetime) -> dict[str, list[datetime]]:
        """Claimed but not yet fired slots per job that ``owner`` may (re)claim now."""
        ...

    def fired(self, slots: Sequence[tuple[str, datetime]], owner: str) -> None:
        """Called after the slots were recorded as fired in SQL (Redis: close the claims)."""
        ...

    def describe(self) -> str:
        ...


def _row(ref: SlotRef, owner: str, now_n: datetime, until: datetime) -> dict[str, Any]:
    return {
        "job": ref.job,
        "kind": KIND_SCHEDULED,
        "slot": naive_utc(ref.slot),
        "task": ref.task,
        "claimed_by": owner,
        "claimed_at": now_n,
        "lease_until": until,
        "attempts": 1,
    }


class SqlClaims:
    """A unique ``schedule_slots`` row per claimed slot, in the metadata database."""

    authoritative = True

    def claim(
        self, session: Session, fresh: Sequence[SlotRef], retry: Sequence[SlotRef], owner: str, now: datetime, lease_s: float
    ) -> set[tuple[str, datetime]]:
        won: set[tuple[str, datetime]] = set()
        now_n = naive_utc(now)
        until = now_n + timedelta(seconds=lease_s)
        rows = [
            {
                "job": ref.job,
                "kind": KIND_SCHEDULED,
                "slot": naive_utc(ref.slot),
                "task": ref.task,
                "claimed_by": owner,
                "claimed_at": now_n,
                "lease_until": until,
                "attempts": 1,
                "fired_at": None,
                "fired_by": None,
                "message_id": None,
            }
            for ref in fresh
        ]
        if rows:
            # One INSERT … ON CONFLICT DO NOTHING RETURNING: the rows it returns are the claims won.
            table: Any = ScheduleSlot.__table__
            stmt = dialect_insert(session)(table).values(rows).on_conflict_do_nothing(
                index_elements=["job", "kind", "slot"]
            ).returning(table.c.job, table.c.slot)
            won.update((job, to_utc(slot)) for job, slot in session.connection().execute(stmt).all())
        for ref in retry:
            slot_n = naive_utc(ref.slot)
            if insert_ignore(session, ScheduleSlot, [{**_row(ref, owner, now_n, until)}], ["job", "kind", "slot"]) == 1:
                won.add((ref.job, ref.slot))
                continue
            result = session.execute(
                update(ScheduleSlot)
                .where(
                    ScheduleSlot.job == ref.job,
                    ScheduleSlot.kind == KIND_SCHEDULED,
                    ScheduleSlot.slot == slot_n,
                    ScheduleSlot.fired_at.is_(None),
                    or_(ScheduleSlot.claimed_by == owner, ScheduleSlot.lease_until < now_n),
                )
                .values(
                    claimed_by=owner,
                    claimed_at=now_n,
                    lease_until=until,
                    attempts=ScheduleSlot.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if int(getattr(result, "rowcount", 0) or 0) == 1:
                won.add((ref.job, ref.slot))
        return won

    def pending(self, session: Session, jobs: Iterable[str], owner: str, now: datetime) -> dict[str, list[datetime]]:
        names = list(jobs)
        if not names:
            return {}
        now_n = naive_utc(now)
        rows = session.execute(
            select(ScheduleSlot.job, ScheduleSlot.slot).where(
                ScheduleSlot.fired_at.is_(None),
                ScheduleSlot.kind == KIND_SCHEDULED,
                ScheduleSlot.job.in_(names),
                or_(ScheduleSlot.claimed_by == owner, ScheduleSlot.lease_until < now_n),
            )
        ).all()
        out: dict[str, list[datetime]] = {}
        for job, slot in rows:
            out.setdefault(job, []).append(to_utc(slot))
        return out

    def fired(self, slots: Sequence[tuple[str, datetime]], owner: str) -> None:
        return None  # the fired_at update on the same row closed the claim

    def describe(self) -> str:
        return "sql"


# KEYS[1] claim key, KEYS[2] pending sorted set of the job.
# ARGV[1] claim value (JSON), ARGV[2] key TTL ms, ARGV[3] now ms (scheduler clock), ARGV[4] slot ms,
# ARGV[5] owner. The plain path is SET NX PX; the rest is re-entry by the owner and takeover of a
# claim whose lease (stored in the value, on the scheduler clock) has passed.
_CLAIM_LUA = """
local function take()
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[4])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[4])
  return 1
end
local raw = redis.call('GET', KEYS[1])
if not raw then
  return take()
end
local ok, cur = pcall(cjson.decode, raw)
if not ok or type(cur) ~= 'table' then
  return 0
end
if cur['fired'] then
  return 0
end
if cur['owner'] == ARGV[5] or tonumber(cur['until']) < tonumber(ARGV[3]) then
  return take()
end
return 0
"""


class RedisClaims:
    """Claims in Redis: one key per slot (``SET NX`` with a TTL), one pending set per job.

    Keys use the hash tag ``{job}`` so a job's claim keys and pending set live in one cluster
    slot (Lua on Redis Cluster needs that). A fired claim is kept for ``fired_ttl_s`` so a
    latecomer's claim fails fast; SQL history stays the authority after it expires.
    """

    authoritative = False

    def __init__(self, client: Any, *, prefix: str = "eventpipe.schedules:", fired_ttl_s: float = 86_400) -> None:
        self.client = client
        self.prefix = prefix
        self.fired_ttl_ms = int(fired_ttl_s * 1000)
        self._claim = client.register_script(_CLAIM_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "eventpipe.schedules:") -> RedisClaims:
        """``redis://host:6379/0`` or ``redis+cluster://host:port,host:port`` (as for the KV store)."""
        if url.startswith("redis+cluster://"):
            from eventpipe.kvstore.redis import RedisClusterStore

            client = RedisClusterStore(url).client
        else:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        return cls(client, prefix=prefix)

    def _key(self, job: str, slot_ms: int) -> str:
        return f"{self.prefix}{{{job}}}:slot:{slot_ms}"

    def _pending_key(self, job: str) -> str:
        return f"{self.prefix}{{{job}}}:pending"

    def claim(
        self, session: Session, fresh: Sequence[SlotRef], retry: Sequence[SlotRef], owner: str, now: datetime, lease_s: float
    ) -> set[tuple[str, datetime]]:
        refs = [*fresh, *retry]
        if not refs:
            return set()
        now_ms = epoch_ms(now)
        lease_ms = max(1, int(lease_s * 1000))
        value = json.dumps({"owner": owner, "until": now_ms + lease_ms, "fired": False})
        pipe = self.client.pipeline(transaction=False)  # one round trip; each script is atomic
        for ref in refs:
            slot_ms = epoch_ms(ref.slot)
            self._claim(keys=[self._key(ref.job, slot_ms), self._pending_key(ref.job)], args=[value, lease_ms, now_ms, slot_ms, owner], client=pipe)
        results = pipe.execute()
        return {(ref.job, ref.slot) for ref, ok in zip(refs, results) if int(ok) == 1}

    def pending(self, session: Session, jobs: Iterable[str], owner: str, now: datetime) -> dict[str, list[datetime]]:
        names = list(jobs)
        pipe = self.client.pipeline(transaction=False)
        for job in names:
            pipe.zrange(self._pending_key(job), 0, -1)
        out: dict[str, list[datetime]] = {}
        for job, members in zip(names, pipe.execute()):
            if members:
                out[job] = [EPOCH + timedelta(milliseconds=int(m)) for m in members]
        return out

    def fired(self, slots: Sequence[tuple[str, datetime]], owner: str) -> None:
        if not slots:
            return
        closed = json.dumps({"owner": owner, "fired": True})
        pipe = self.client.pipeline(transaction=False)
        for job, slot in slots:
            slot_ms = epoch_ms(slot)
            pipe.set(self._key(job, slot_ms), closed, px=self.fired_ttl_ms)
            pipe.zrem(self._pending_key(job), str(slot_ms))
        pipe.execute()

    def describe(self) -> str:
        return f"redis (prefix {self.prefix!r})"

    def delete_all(self) -> int:
        """Remove every key under the prefix (tests, decommissioning a deployment)."""
        n = 0
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            n += self.client.delete(key)
        return n


def make_claims(rt: Any) -> SlotClaims:
    """Redis claims when ``EVENTPIPE_REDIS_URL`` is set, SQL claims otherwise."""
    url = getattr(rt.settings, "redis_url", None)
    if url:
        return RedisClaims.from_url(url, prefix=f"{rt.settings.queue_prefix}schedules:")
    return SqlClaims()
