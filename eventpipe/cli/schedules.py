"""``eventpipe schedules …`` (periodic jobs) and ``eventpipe scheduler`` (the process that fires them).

Each command is a thin call into :mod:`eventpipe.schedules.control`; unknown job names raise
:class:`~eventpipe.errors.UnknownJob`, reported like every other error.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from functools import partial
from typing import Any

import click

from eventpipe.runtime import reset_runtime
from eventpipe.schedules import control

from eventpipe.errors import EventpipeError

from ._common import ServiceUnavailable, command, emit_json, group, iso, json_option, open_rt, out, table


def _print(headers: list[str], rows: list[list[Any]]) -> None:
    out.print(table(headers, rows, compact=True))


@group("schedules")
def schedules() -> None:
    """Periodic jobs: list, history, run now, pause and resume."""


@schedules.command("list")
@json_option
def list_jobs(as_json: bool) -> None:
    """Every periodic job: task, schedule, next run, last run, paused."""
    rows = control.list_jobs(open_rt())
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no periodic jobs are declared; docs/scheduler.md shows how to declare one")
        return
    _print(
        ["job", "task", "spec", "next run", "last run", "paused"],
        [
            [r["job"], r["task"] + ("" if r["known_task"] else " (undeclared!)"), r["spec"], iso(r["next_run"]),
             iso(r["last_run"]), f"yes (by {r['paused_by']})" if r["paused"] else "no"]
            for r in rows
        ],
    )


@schedules.command("history")
@click.option("--job", "job", default=None, help="only this job")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="newest N firings")
@json_option
def history(job: str | None, limit: int, as_json: bool) -> None:
    """Fired slots, newest first: job, slot time, fired at, scheduler."""
    rows = control.history(open_rt(), job=job, limit=limit)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no slot has fired yet" + (f" for job {job!r}" if job else "") + "; is a scheduler running? (`eventpipe scheduler`)")
        return
    _print(
        ["job", "slot", "fired at", "scheduler", "kind"],
        [[r["job"], iso(r["slot"]), iso(r["fired_at"]), r["scheduler"], r["kind"]] for r in rows],
    )


@schedules.command("run-now")
@click.argument("job")
@json_option
def run_now(job: str, as_json: bool) -> None:
    """Publish JOB's task once, now (also when paused); recorded in history as manual."""
    result = control.run_now(open_rt(), job)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"published {result['task']} for job {result['job']} (message {result['message_id']})")


@schedules.command("pause")
@click.argument("job")
@json_option
def pause(job: str, as_json: bool) -> None:
    """Stop JOB firing on every scheduler until resumed."""
    result = control.pause(open_rt(), job)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"paused {result['job']}; schedulers stop firing it from their next due tick")


@schedules.command("resume")
@click.argument("job")
@json_option
def resume(job: str, as_json: bool) -> None:
    """Let JOB fire again; slots that passed while it was paused are skipped."""
    result = control.resume(open_rt(), job)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"resumed {result['job']}; next run {iso(result['next_run'])}")


@command("scheduler")
@click.option("--once", is_flag=True, help="fire what is due now, then exit")
@click.option("--poll", "poll_s", default=1.0, show_default=True, type=click.FloatRange(0.05, 60), help="seconds between ticks")
@click.option("--id", "scheduler_id", default=None, help="scheduler id shown in history (default host:pid:random)")
@partial(json_option, help="print JSON lines, one per event")
def scheduler(once: bool, poll_s: float, scheduler_id: str | None, as_json: bool) -> None:
    """Run the scheduler until SIGTERM/SIGINT (any number may run at once; each slot fires once).

    In the embedded mode (no broker URL) it also runs in-process workers for what it publishes."""
    from eventpipe.schedules.scheduler import Scheduler, TickResult

    rt = open_rt()
    try:
        sched = Scheduler(rt, scheduler_id=scheduler_id)
    except EventpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a Redis URL is set but unreachable
        raise ServiceUnavailable(f"cannot start the scheduler: {type(exc).__name__}: {exc}") from None

    def report(result: TickResult) -> None:
        if as_json:
            emit_json({"event": "tick", "scheduler": sched.id, **result.as_dict()}, line=True)
            return
        for f in result.fired:
            click.echo(f"{iso(result.now)} fired {f.job} slot {iso(f.slot)} ({f.task}, message {f.message_id})")
        for job, slot, error in result.failed:
            click.echo(f"{iso(result.now)} FAILED {job} slot {iso(slot)}: {error} (will retry)", err=True)

    # The embedded broker lives inside this process: with no workers here, what the scheduler
    # publishes would vanish with the process. So in embedded mode this command also runs them.
    embedded = rt.broker.in_process
    if once:
        try:
            result = sched.tick()
            if embedded and result.fired:
                rt.broker.run_until_idle()
        except EventpipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - driver errors: name them and what to check
            raise ServiceUnavailable(f"tick failed: {type(exc).__name__}: {exc}") from None
        report(result)
        if not as_json and not result.fired and not result.failed:
            click.echo("nothing due")
        return

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    start = {"event": "start", "scheduler": sched.id, "jobs": len(sched.jobs), "claims": sched.claims.describe(),
             "embedded_workers": embedded, "at": iso(datetime.now(UTC))}
    if as_json:
        emit_json(start, line=True)
    else:
        click.echo(
            f"scheduler {sched.id}: {start['jobs']} jobs, claims {start['claims']}"
            + (", with in-process workers (embedded broker)" if embedded else "")
            + "; stop with Ctrl-C or SIGTERM",
            err=True,
        )
    sys.stdout.flush()
    worker = None
    if embedded:
        from dramatiq import Worker

        worker = Worker(rt.broker, worker_threads=4, worker_timeout=100)
        worker.start()
    try:
        sched.run(stop, poll_s=poll_s, on_tick=report)
    finally:
        if worker is not None:
            worker.stop()  # lets running tasks finish; queued embedded messages end with the process
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if as_json:
            emit_json({"event": "stop", "scheduler": sched.id, "at": iso(datetime.now(UTC))}, line=True)
        reset_runtime()


__all__ = ["scheduler", "schedules"]
