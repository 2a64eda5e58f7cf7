"""eventpipe.schedules: periodic jobs fired exactly once per slot, however many schedulers run.

* :mod:`.spec` — ``periodic()`` declarations (interval or cron, jitter, expiry, catch-up) and slot math
* :mod:`.jobs` — the pipeline's own periodic jobs
* :mod:`.scheduler` — the ``Scheduler`` loop and ``start_in_thread`` for the embedded mode
* :mod:`.claims` — per-slot claims in SQL (default) or Redis
* :mod:`.expiry` — the ``SlotExpiry`` worker middleware that drops expired scheduled messages
* :mod:`.control` — operator actions (the ``eventpipe schedules`` commands in :mod:`eventpipe.cli.schedules` call them)
* :mod:`.models` / :mod:`.store` — SQL state (watermark, pause, claims and history)

See docs/scheduler.md.
"""
