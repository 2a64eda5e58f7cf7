"""A scheduler in its own process, for the multi-process tests.

Reads a JSON config (home, database_url, id, steps, out, barrier, optional kill_at_step), builds a
real embedded runtime, waits at the start barrier, ticks through the shared simulated timeline and
writes the (job, slot) of every message its broker received. With ``kill_at_step`` it SIGKILLs
itself right after claiming at that step (before publishing), like a crashed scheduler.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _progress(folder: Path, name: str) -> int:
    try:
        return int((folder / f"{name}.progress").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _set_progress(folder: Path, name: str, step: int) -> None:
    tmp = folder / f"{name}.progress.tmp"
    tmp.write_text(str(step))
    os.replace(tmp, folder / f"{name}.progress")


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    from eventpipe.config import load_settings
    from eventpipe.runtime import Runtime
    from eventpipe.schedules.scheduler import Scheduler
    from tests.support.schedules import (
        FakeClock,
        concurrency_jobs,
        message_slots,
        timeline,
    )

    overrides = {"home": cfg["home"], "redis_url": None}
    if cfg.get("database_url"):
        overrides["database_url"] = cfg["database_url"]
    rt = Runtime(load_settings(**overrides))
    clock = FakeClock()
    sched = Scheduler(rt, clock=clock, jobs=concurrency_jobs(), scheduler_id=cfg["id"], lease_s=cfg.get("lease_s", 60))
    kill_at = cfg.get("kill_at_step")
    if kill_at is not None:
        real_publish = sched._publish

        def publish(spec, slot, result):  # type: ignore[no-untyped-def]
            if step_no[0] >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # claimed, never published
            real_publish(spec, slot, result)

        sched._publish = publish  # type: ignore[method-assign]
    step_no = [0]
    barrier = Path(cfg["barrier"])
    (barrier / f"{cfg['id']}.ready").touch()
    while not (barrier / "go").exists():
        time.sleep(0.01)
    peers = [p for p in cfg.get("peers", []) if p != cfg["id"]]
    max_ahead = cfg.get("max_ahead", 5)
    for i, t in enumerate(timeline(cfg["steps"])):
        # Bounded clock skew between processes, like real hosts (a lease assumes it): do not run
        # more than max_ahead steps ahead of the slowest live peer (progress files, atomically replaced).
        while peers and min(_progress(barrier, p) for p in peers) < i - max_ahead:
            time.sleep(0.001)
        step_no[0] = i
        clock.set(t)
        sched.tick()
        _set_progress(barrier, cfg["id"], i + 1)
    _set_progress(barrier, cfg["id"], 10**9)
    Path(cfg["out"]).write_text(json.dumps({"enqueued": message_slots([rt])}))
    rt.close()


if __name__ == "__main__":
    main()
