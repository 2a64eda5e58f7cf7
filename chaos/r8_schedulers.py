"""R8: three ``eventpipe scheduler`` processes killed with -9 and restarted at random while a
one-second periodic job (``chaos.tick``, :mod:`chaos.ticktask`) fires.

Counted from ``chaos_ticks`` (one row per slot and message, written by the task) and from
``schedule_slots`` (the schedulers' own record): a *double fire* is a slot with more than one
message, a *missed slot* is a second of the run with no message at all. The job's catch-up policy
is ``all`` (every slot missed while no scheduler was alive fires when one is back), so both should
be 0. Claims are Redis claims (the suite's Redis), with the SQL history beside them.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from .scenarios import Row, World
from .ticktask import TABLE_DDL

RUN_S = 150.0  # seconds of kills and restarts
LEASE_S = 60.0  # the schedulers' default claim lease: a killed scheduler's claims wait this long
SETTLE_S = LEASE_S + 60.0  # after the kills, until every slot of the run has its effect


def _slots(conn: sa.Connection, sql: str, **params: object) -> dict[datetime, int]:
    return {r[0].astimezone(UTC) if r[0].tzinfo else r[0].replace(tzinfo=UTC): int(r[1])
            for r in conn.execute(sa.text(sql), params)}


def r8_schedulers(world: World) -> Row:
    row = Row("R8", "3 schedulers, random kill -9 and restarts for 150 s, a job firing every second")
    dep = world.dep
    env = dep.env(EVENTPIPE_TASK_MODULES="chaos.ticktask", EVENTPIPE_REDIS_URL=f"redis://127.0.0.1:{dep.redis_port}/1")
    res = dep.cli("db", "upgrade", "--json")
    if res.returncode != 0:
        raise RuntimeError(f"db upgrade failed: {res.stdout[-500:]}{res.stderr[-1500:]}")
    with world.engine.begin() as conn:
        conn.execute(sa.text(TABLE_DDL))
        conn.execute(sa.text("TRUNCATE chaos_ticks"))
        conn.execute(sa.text("DELETE FROM schedule_slots WHERE job = 'chaos.tick'"))
        conn.execute(sa.text("DELETE FROM schedule_jobs WHERE job = 'chaos.tick'"))
    worker = dep.spawn("r8-worker", "worker", "--queues", "chaos", "--processes", "1", "--threads", "4", env=env)
    procs: list[subprocess.Popen[bytes] | None] = [None, None, None]

    def start(i: int) -> None:
        procs[i] = dep.spawn(f"r8-scheduler-{i}", "scheduler", "--id", f"chaos-sched-{i}", env=env)

    rnd = random.Random(8)
    kills = restarts = crashed = 0
    for i in range(3):
        start(i)
    end = time.monotonic() + RUN_S
    while time.monotonic() < end:
        time.sleep(rnd.uniform(1.0, 6.0))
        i = rnd.randrange(3)
        p = procs[i]
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            kills += 1
        else:
            if p is not None and p.returncode != -signal.SIGKILL:
                crashed += 1  # exited by itself
            start(i)
            restarts += 1
    for i, p in enumerate(procs):
        if p is None or p.poll() is not None:
            if p is not None and p.returncode != -signal.SIGKILL:
                crashed += 1
            start(i)
            restarts += 1
    chaos_end = datetime.now(UTC)
    healed = time.monotonic()

    # Every second from the first slot fired to the end of the kills must get its effect.
    deadline = time.monotonic() + SETTLE_S
    while True:
        with world.engine.connect() as conn:
            effects = _slots(conn, "SELECT slot, count(DISTINCT message_id) FROM chaos_ticks GROUP BY slot")
        first = min(effects) if effects else None
        expected = []
        if first is not None:
            n = int((chaos_end - first).total_seconds())
            expected = [first + timedelta(seconds=k) for k in range(n + 1)]
        missing = [s for s in expected if s not in effects]
        if (expected and not missing) or time.monotonic() > deadline:
            break
        time.sleep(2)
    settled_s = time.monotonic() - healed
    with world.engine.connect() as conn:
        effects = _slots(conn, "SELECT slot, count(DISTINCT message_id) FROM chaos_ticks GROUP BY slot")
        recorded = _slots(conn, "SELECT slot, count(*) FROM schedule_slots WHERE job = 'chaos.tick' "
                                "AND fired_at IS NOT NULL GROUP BY slot")
        late = conn.execute(sa.text("SELECT max(ran_at - slot) FROM chaos_ticks")).scalar_one()
        unrecorded_msgs = conn.execute(sa.text(
            "SELECT count(*) FROM chaos_ticks t WHERE NOT EXISTS (SELECT 1 FROM schedule_slots s WHERE "
            "s.job = 'chaos.tick' AND s.message_id = t.message_id)")).scalar_one()
    for p in procs:
        if p is not None:
            dep.stop(p)
    dep.stop(worker)
    twice = sum(len(re.findall("fired twice", (dep.base / f"r8-scheduler-{i}.log").read_text(errors="replace")))
                for i in range(3))

    in_run = {s: n for s, n in effects.items() if s <= chaos_end}
    row.requests = len(expected)  # slots due during the run
    row.accepted = sum(1 for s in expected if s in recorded)  # recorded as fired by a scheduler
    row.stored = sum(1 for s in expected if s in effects)  # with the task's effect
    row.lost = len(missing)  # missed slots
    row.dup_rows = sum(n - 1 for n in in_run.values() if n > 1)  # extra messages for one slot
    row.dup_counts = sum(n - 1 for n in recorded.values() if n > 1)
    row.recover_s = late.total_seconds() if late is not None else None
    row.bad = crashed
    row.notes += [
        (f"{kills} kills, {restarts} restarts over {RUN_S:.0f} s; claims in Redis, catch-up policy 'all' "
         "(every missed slot fires once a scheduler is back): expected missed slots 0"),
        (f"slots from {first:%H:%M:%S} UTC (the first fired) to the end of the kills, all in within "
         f"{settled_s:.0f} s of the last restart; recover s = the latest any slot's task ran after its slot "
         f"time (a killed scheduler's claims wait for their {LEASE_S:.0f} s lease)") if first else "no slot fired at all",
        (f"{unrecorded_msgs} task runs whose message is not the one schedule_slots recorded; "
         f"'fired twice' logged {twice} times; schedulers that exited by themselves: {crashed}"),
    ]
    if missing:
        row.notes.append("missed slots: " + ", ".join(f"{s:%H:%M:%S}" for s in missing[:20]))
    return row
