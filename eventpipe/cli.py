"""The `eventpipe` command. Each subcommand is a thin call into a package below; subsystems
(kv, schedules, federation, ops) bring their own click groups, attached here."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from eventpipe.config import ConfigError

INTERNAL_KEY_PREFIX = "_eventpipe/"  # bookkeeping keys (migration checkpoints), not bodies
err = Console(stderr=True)
out = Console()


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def runtime() -> Any:
    from eventpipe.runtime import open_runtime

    try:
        return open_runtime()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class EventpipeGroup(click.Group):
    """Turns configuration errors anywhere into one clear message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            err.print(f"[red]configuration error:[/red] {exc}")
            ctx.exit(2)


@click.group(cls=EventpipeGroup)
@click.option("-v", "--verbose", is_flag=True, help="log at INFO level")
def main(verbose: bool) -> None:
    """eventpipe: offline task processing for event pipelines."""
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# tasks ----------------------------------------------------------------------------------------
@main.group()
def tasks() -> None:
    """Declared tasks."""


@tasks.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def tasks_list(as_json: bool) -> None:
    """List every declared task with its queue."""
    from eventpipe.config import get_settings
    from eventpipe.queues.topology import Topology
    from eventpipe.tasks.api import load_catalogue

    topo = Topology(get_settings().queue_prefix)
    rows = [{**spec.as_row(), "physical_queue": topo.queue(spec.queue)} for spec in load_catalogue().all()]
    if as_json:
        emit_json(rows)
        return
    table = Table("task", "queue", "retries", "time limit", "doc")
    for r in rows:
        table.add_row(r["name"], r["physical_queue"], str(r["max_retries"] if r["max_retries"] is not None else "default"), f"{r['time_limit_ms'] // 1000}s", r["doc"])
    out.print(table)


# db ---------------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration (safe to run repeatedly)."""
    from eventpipe.config import get_settings
    from eventpipe.kvstore import redact_url
    from eventpipe.metadata.db import Database

    settings = get_settings()
    database = Database(settings.resolved_database_url())
    database.upgrade()
    from eventpipe.metadata.migrate import current

    click.echo(f"database {redact_url(database.url)} at revision {current(database.engine)}")


# projects -------------------------------------------------------------------------------------
@main.group()
def projects() -> None:
    """Projects and their ingest keys."""


@projects.command("add")
@click.argument("project_id", type=int)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def projects_add(project_id: int, name: str, as_json: bool) -> None:
    """Create a project (idempotent) and print its ingest key."""
    from eventpipe.metadata.queries import ensure_project

    p = ensure_project(runtime().db, project_id, name)
    row = {"id": p.id, "name": p.name, "ingest_key": p.ingest_key}
    emit_json(row) if as_json else click.echo(f"project {p.id} {p.name}: ingest key {p.ingest_key}")


@projects.command("list")
@click.option("--json", "as_json", is_flag=True)
def projects_list(as_json: bool) -> None:
    from eventpipe.metadata.queries import list_projects

    rows = [{"id": p.id, "name": p.name} for p in list_projects(runtime().db)]
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            click.echo(f"{r['id']}\t{r['name']}")


# demo / send / stats / issues -------------------------------------------------------------------
def store_totals(rt: Any) -> dict[str, Any]:
    from eventpipe.metadata.queries import issue_rows, totals

    t = totals(rt.db)
    return {
        "events_stored": t["events_stored"],
        "bodies_stored": sum(1 for k in rt.store.keys() if not k.startswith(INTERNAL_KEY_PREFIX)),
        "issues": [
            {k: r[k] for k in ("id", "title", "count", "first_seen", "last_seen")} for r in issue_rows(rt.db)
        ],
    }


def finish_embedded(rt: Any, expected: int, *, show_progress: bool) -> None:
    """Embedded mode: run the in-process workers until every queue is empty, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eventpipe.metadata.queries import totals

    start = totals(rt.db)["events_stored"]
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=not show_progress) as bar:
        job = bar.add_task("events", total=max(expected, 0))
        last = [0.0]

        def tick() -> None:
            if time.monotonic() - last[0] > 0.25:
                last[0] = time.monotonic()
                bar.update(job, completed=totals(rt.db)["events_stored"] - start)

        rt.broker.run_until_idle(threads=4, progress=tick)
        bar.update(job, completed=totals(rt.db)["events_stored"] - start)


def apply_periodic_now(rt: Any) -> None:
    """Flush counters and roll up now, as the scheduler would, so totals are current."""
    from eventpipe.tasks.buffers import flush_counters
    from eventpipe.tasks.rollups import hourly, daily

    flush_counters(rt)
    hourly(rt, lookback_hours=48)
    daily(rt, lookback_hours=48)


@main.command()
@click.option("--events", "n_events", type=click.IntRange(1, 10_000_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--submit-only", is_flag=True, help="publish and exit; workers elsewhere process them")
@click.option("--node", default=None, help="pin publishing to one broker node HOST:PORT")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object for scripts")
def demo(n_events: int, seed: int, submit_only: bool, node: str | None, as_json: bool) -> None:
    """Generate realistic error events, run them through the pipeline, show the issues."""
    from eventpipe.ingest.submit import SubmitResult, submit_many
    from eventpipe.metadata.queries import ensure_project
    from eventpipe.pipeline.demo import DEMO_PROJECTS, generate

    rt = runtime()
    if node:
        rt.pin_node(node)
    if submit_only and rt.settings.embedded:
        raise click.UsageError("--submit-only needs a broker (EVENTPIPE_BROKER_URL): the embedded broker lives in this process")
    for pid, (name, _platform) in DEMO_PROJECTS.items():
        ensure_project(rt.db, pid, name)
    started = time.monotonic()
    events = generate(n_events, seed, now=time.time())
    result = SubmitResult()
    chunk = 1000
    for start in range(0, len(events), chunk):
        by_project: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for offset, ev in enumerate(events[start : start + chunk]):
            by_project[ev.project_id].append((start + offset, ev.payload))
        for pid, items in by_project.items():
            part = submit_many(rt, pid, [p for _, p in items])
            for r in part.rejected:
                r.index = items[r.index][0]
            result.merge(part)
    submitted = time.monotonic()
    if rt.settings.embedded:
        finish_embedded(rt, len(result.accepted), show_progress=not as_json)
    if not submit_only:
        apply_periodic_now(rt)
    elapsed = time.monotonic() - started
    report: dict[str, Any] = {
        "accepted": len(result.accepted),
        "duplicates": len(result.duplicates),
        "rejected": result.rejected_by_reason(),
        "submit_seconds": round(submitted - started, 3),
        "wall_seconds": round(elapsed, 3),
        "events_per_second": round(n_events / elapsed, 1) if elapsed > 0 else None,
    }
    if not submit_only:
        report.update(store_totals(rt))
    if as_json:
        emit_json(report)
        return
    if not submit_only:
        print_issues(report["issues"][:25], total=len(report["issues"]))
    out.print(
        f"accepted {report['accepted']}, duplicates {report['duplicates']}, rejected {sum(report['rejected'].values())} "
        f"{report['rejected'] or ''}"
    )
    if not submit_only:
        out.print(f"stored: {report['events_stored']} events, {report['bodies_stored']} bodies, {len(report['issues'])} issues")
    out.print(f"{n_events} events in {elapsed:.2f}s ({report['events_per_second']} events/s)")


def print_issues(rows: list[dict[str, Any]], *, total: int) -> None:
    table = Table("id", "title", "count", "first seen", "last seen", title=f"issues ({total})")
    for r in rows:
        table.add_row(str(r["id"]), r["title"][:70], str(r["count"]), r["first_seen"][:19], r["last_seen"][:19])
    out.print(table)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--project", "project_id", type=int, default=None, help="project id (default: from the envelope DSN)")
@click.option("--node", default=None, help="pin publishing to one broker node HOST:PORT")
@click.option("--json", "as_json", is_flag=True)
def send(files: tuple[Path, ...], project_id: int | None, node: str | None, as_json: bool) -> None:
    """Submit events from JSON files (one event, or a list) or Sentry envelope files."""
    from eventpipe.ingest.files import read_event_file
    from eventpipe.ingest.submit import submit_many
    from eventpipe.pipeline.errors import InvalidEvent

    rt = runtime()
    if node:
        rt.pin_node(node)
    report: list[dict[str, Any]] = []
    accepted = 0
    failed = False
    for path in files:
        try:
            pid, events = read_event_file(path, project_id)
        except InvalidEvent as exc:
            failed = True
            report.append({"file": str(path), "error": str(exc), "reason": exc.reason, "field": exc.field})
            err.print(f"[red]{exc.field}[/red]: {exc.detail}", soft_wrap=True)
            continue
        result = submit_many(rt, pid, events)
        accepted += len(result.accepted)
        for r in result.rejected:
            failed = True
            where = f"{path}" + (f"[{r.index}]" if len(events) > 1 else "")
            err.print(f"[red]{where}[/red]: {r.field}: {r.detail}", soft_wrap=True)
        report.append(
            {
                "file": str(path),
                "project_id": pid,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": [{"index": r.index, "reason": r.reason, "field": r.field, "detail": r.detail} for r in result.rejected],
            }
        )
    if rt.settings.embedded and accepted:
        finish_embedded(rt, accepted, show_progress=not as_json)
    if as_json:
        emit_json({"files": report, "accepted": accepted})
    else:
        click.echo(f"accepted {accepted} event(s) from {len(files)} file(s)")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--flush", is_flag=True, help="first apply pending buffered counters")
@click.option("--json", "as_json", is_flag=True)
def stats(flush: bool, as_json: bool) -> None:
    """Totals in the store: events, bodies, issues."""
    rt = runtime()
    if flush:
        apply_periodic_now(rt)
    report = store_totals(rt)
    if as_json:
        emit_json(report)
        return
    print_issues(report["issues"][:25], total=len(report["issues"]))
    out.print(f"stored: {report['events_stored']} events, {report['bodies_stored']} bodies, {len(report['issues'])} issues")


@main.group()
def issues() -> None:
    """Grouped issues."""


@issues.command("list")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--limit", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def issues_list(project_id: int | None, limit: int | None, as_json: bool) -> None:
    from eventpipe.metadata.queries import issue_rows

    rows = issue_rows(runtime().db, project_id=project_id, limit=limit)
    if as_json:
        emit_json(rows)
    else:
        print_issues(rows, total=len(rows))


def _attach_subsystems() -> None:
    """Attach each subsystem's own click group; a missing optional one is skipped."""
    from importlib import import_module

    for module, names in (
        ("eventpipe.kvstore.cli", ("kv",)),
        ("eventpipe.schedules.cli", ("schedules", "scheduler")),
        ("eventpipe.queues.federation_cli", ("federation",)),
        ("eventpipe.queues.worker_cli", ("worker",)),
        ("eventpipe.ops.cli", ("ops",)),
        ("eventpipe.ingest.server", ("ingest",)),
        ("eventpipe.web.cli", ("web", "users")),
    ):
        try:
            mod = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        for name in names:
            if hasattr(mod, name):
                main.add_command(getattr(mod, name), name)


_attach_subsystems()

if __name__ == "__main__":
    main()
