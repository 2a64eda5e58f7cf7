"""Operator commands: ``eventpipe schedules …`` and ``eventpipe scheduler``.

Attach to the main command with ``main.add_command(schedules)`` and ``main.add_command(scheduler)``.
Each command is a thin call into :mod:`eventpipe.schedules.control`; every command that prints
data has ``--json``; errors say what was wrong and what to do, and exit with status 1.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click

from eventpipe.runtime import open_runtime, reset_runtime
from eventpipe.schedules import control
from eventpipe.schedules.spec import ScheduleError


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return _iso(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(_jsonable(data), sort_keys=True))


def _runtime() -> Any:
    try:
        return open_runtime()
    except Exception as exc:  # noqa: BLE001 - configuration or connection problems
        raise click.ClickException(
            f"cannot open the eventpipe runtime: {exc}. Check EVENTPIPE_* settings (database, broker, redis) "
            "and that the services are reachable."
        ) from None


def _job_error(exc: KeyError) -> click.ClickException:
    return click.ClickException(str(exc.args[0]) if exc.args else str(exc))


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*["-" if v is None else str(v) for v in row])
    Console(width=200).print(table)


@click.group("schedules")
def schedules() -> None:
    """Periodic jobs: list, history, run now, pause and resume."""


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_cmd(as_json: bool) -> None:
    """Every periodic job: task, schedule, next run, last run, paused."""
    rt = _runtime()
    rows = control.list_jobs(rt)
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("no periodic jobs are declared (declare one with @task(..., every=...) or cron=...)")
        return
    _table(
        ["job", "task", "spec", "next run", "last run", "paused"],
        [
            [r["job"], r["task"] + ("" if r["known_task"] else " (undeclared!)"), r["spec"], _iso(r["next_run"]),
             _iso(r["last_run"]), f"yes (by {r['paused_by']})" if r["paused"] else "no"]
            for r in rows
        ],
    )


@schedules.command("history")
@click.option("--job", "job", default=None, help="only this job")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="newest N firings")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def history_cmd(job: str | None, limit: int, as_json: bool) -> None:
    """Fired slots, newest first: job, slot time, fired at, scheduler."""
    rt = _runtime()
    try:
        rows = control.history(rt, job=job, limit=limit)
    except KeyError as exc:
        raise _job_error(exc) from None
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo("no slot has fired yet" + (f" for job {job!r}" if job else "") + "; is a scheduler running? (`eventpipe scheduler`)")
        return
    _table(
        ["job", "slot", "fired at", "scheduler", "kind"],
        [[r["job"], _iso(r["slot"]), _iso(r["fired_at"]), r["scheduler"], r["kind"]] for r in rows],
    )


@schedules.command("run-now")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def run_now_cmd(job: str, as_json: bool) -> None:
    """Publish JOB's task once, now (also when paused); recorded in history as manual."""
    rt = _runtime()
    try:
        out = control.run_now(rt, job)
    except KeyError as exc:
        raise _job_error(exc) from None
    if as_json:
        _emit_json(out)
    else:
        click.echo(f"published {out['task']} for job {out['job']} (message {out['message_id']})")


@schedules.command("pause")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def pause_cmd(job: str, as_json: bool) -> None:
    """Stop JOB firing on every scheduler until resumed."""
    rt = _runtime()
    try:
        out = control.pause(rt, job)
    except KeyError as exc:
        raise _job_error(exc) from None
    if as_json:
        _emit_json(out)
    else:
        click.echo(f"paused {out['job']}; schedulers stop firing it from their next due tick")


@schedules.command("resume")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def resume_cmd(job: str, as_json: bool) -> None:
    """Let JOB fire again; slots that passed while it was paused are skipped."""
    rt = _runtime()
    try:
        out = control.resume(rt, job)
    except KeyError as exc:
        raise _job_error(exc) from None
    if as_json:
        _emit_json(out)
    else:
        click.echo(f"resumed {out['job']}; next run {_iso(out['next_run'])}")


@click.command("scheduler")
@click.option("--once", is_flag=True, help="fire what is due now, then exit")
@click.option("--poll", "poll_s", default=1.0, show_default=True, type=click.FloatRange(0.05, 60), help="seconds between ticks")
@click.option("--id", "scheduler_id", default=None, help="scheduler id shown in history (default host:pid:random)")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines")
def scheduler(once: bool, poll_s: float, scheduler_id: str | None, as_json: bool) -> None:
    """Run the scheduler until SIGTERM/SIGINT (any number may run at once; each slot fires once).

    In the embedded mode (no broker URL) it also runs in-process workers for what it publishes."""
    from eventpipe.schedules.scheduler import Scheduler, TickResult

    rt = _runtime()
    try:
        sched = Scheduler(rt, scheduler_id=scheduler_id)
    except (ScheduleError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - e.g. Redis URL set but unreachable
        raise click.ClickException(f"cannot start the scheduler: {exc}") from None

    def report(result: TickResult) -> None:
        if as_json:
            _emit_json({"event": "tick", "scheduler": sched.id, **result.as_dict()})
            return
        for f in result.fired:
            click.echo(f"{_iso(result.now)} fired {f.job} slot {_iso(f.slot)} ({f.task}, message {f.message_id})")
        for job, slot, err in result.failed:
            click.echo(f"{_iso(result.now)} FAILED {job} slot {_iso(slot)}: {err} (will retry)", err=True)

    # The embedded broker lives inside this process: with no workers here, what the scheduler
    # publishes would vanish with the process. So in embedded mode this command also runs them.
    embedded = bool(getattr(rt.settings, "embedded", False))
    if once:
        try:
            result = sched.tick()
            if embedded and result.fired:
                rt.broker.run_until_idle()
        except Exception as exc:  # noqa: BLE001
            raise click.ClickException(f"tick failed: {exc}; check the database/Redis/broker settings") from None
        if as_json:
            _emit_json({"event": "tick", "scheduler": sched.id, **result.as_dict()})
        else:
            report(result)
            if not result.fired and not result.failed:
                click.echo("nothing due")
        return

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    start = {"event": "start", "scheduler": sched.id, "jobs": len(sched.jobs), "claims": sched.claims.describe(),
             "embedded_workers": embedded, "at": _iso(datetime.now(UTC))}
    if as_json:
        _emit_json(start)
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
            _emit_json({"event": "stop", "scheduler": sched.id, "at": _iso(datetime.now(UTC))})
        reset_runtime()
