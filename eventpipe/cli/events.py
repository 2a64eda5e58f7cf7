"""``eventpipe demo``, ``send``, ``stats`` and ``issues``: put events in, see what came out."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eventpipe.ingest.files import read_event_file_full
from eventpipe.ingest.stored import store_attachments
from eventpipe.ingest.submit import SubmitResult, submit_many
from eventpipe.metadata.queries import ensure_project, store_totals, totals
from eventpipe.pipeline.demo import DEMO_PROJECTS, generate
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.schedules.control import apply_periodic_now

from ._common import ExitCode, command, emit_json, err, json_option, open_rt, out, table

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime


def finish_work(rt: Runtime, expected: int, *, show_progress: bool) -> None:
    """Run what was just enqueued to completion where the broker lives in this process (the
    embedded mode), with a progress bar; with RabbitMQ the workers elsewhere do it."""
    if not rt.broker.in_process:
        return
    start = totals(rt.db)["events_stored"]
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  disable=not show_progress) as bar:
        job = bar.add_task("events", total=max(expected, 0))
        last = [0.0]

        def tick() -> None:
            if time.monotonic() - last[0] > 0.25:
                last[0] = time.monotonic()
                bar.update(job, completed=totals(rt.db)["events_stored"] - start)

        rt.broker.run_until_idle(threads=4, progress=tick)
        bar.update(job, completed=totals(rt.db)["events_stored"] - start)


def print_issues(rows: list[dict[str, Any]], *, total: int) -> None:
    out.print(table(
        ["id", "title", "count", "first seen", "last seen"],
        [[r["id"], r["title"][:70], r["count"], r["first_seen"][:19], r["last_seen"][:19]] for r in rows],
        title=f"issues ({total})",
    ))


def print_totals(report: dict[str, Any]) -> None:
    out.print(f"stored: {report['events_stored']} events, {report['bodies_stored']} bodies, "
              f"{len(report['issues'])} issues", highlight=False)


@command()
@click.option("--events", "n_events", type=click.IntRange(1, 10_000_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--submit-only", is_flag=True, help="publish and exit; workers elsewhere process them")
@click.option("--node", default=None, help="pin publishing to one broker node HOST:PORT")
@json_option
def demo(n_events: int, seed: int, submit_only: bool, node: str | None, as_json: bool) -> None:
    """Generate realistic error events, run them through the pipeline, show the issues."""
    rt = open_rt()
    if node:
        rt.pin_node(node)
    if submit_only and rt.broker.in_process:
        raise click.UsageError("--submit-only needs a broker (EVENTPIPE_BROKER_URL): the embedded broker lives in this process")
    for pid, (name, _platform) in DEMO_PROJECTS.items():
        ensure_project(rt.db, pid, name)
    events = generate(n_events, seed, now=time.time())
    started = time.monotonic()
    result = SubmitResult()
    accepted_keys: set[tuple[int, str]] = set()  # (project, id): two projects may send one id
    chunk = 1000
    for start in range(0, len(events), chunk):
        by_project: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for offset, ev in enumerate(events[start : start + chunk]):
            by_project[ev.project_id].append((start + offset, ev.payload))
        for pid, items in by_project.items():
            part = rt.submitter.submit_many(pid, [p for _, p in items])
            accepted_keys.update((pid, event_id) for event_id in part.accepted)
            for r in part.rejected:
                r.index = items[r.index][0]
            result.merge(part)
    submitted = time.monotonic()
    finish_work(rt, len(result.accepted), show_progress=not as_json)
    processed = time.monotonic()
    if not submit_only:
        apply_periodic_now(rt)  # flush counters, roll up: the totals below are current
    elapsed = time.monotonic() - started
    pipeline_s = processed - started
    distinct = len(accepted_keys)  # an id resent in a later chunk is absorbed at save
    report: dict[str, Any] = {
        "accepted": distinct,
        "duplicates": len(result.duplicates) + len(result.accepted) - distinct,
        "rejected": result.rejected_by_reason(),
        "submit_seconds": round(submitted - started, 3),
        "pipeline_seconds": round(pipeline_s, 3),  # submit until every event is processed and saved
        "wall_seconds": round(elapsed, 3),  # plus the counter flush and rollups
        "events_per_second": round(n_events / pipeline_s, 1) if pipeline_s > 0 else None,
    }
    if not submit_only:
        report.update(store_totals(rt.db, rt.store))
    if as_json:
        emit_json(report)
        return
    if not submit_only:
        print_issues(report["issues"][:25], total=len(report["issues"]))
    out.print(
        f"accepted {report['accepted']}, duplicates {report['duplicates']}, rejected {sum(report['rejected'].values())} "
        f"{report['rejected'] or ''}", highlight=False,
    )
    if not submit_only:
        print_totals(report)
    out.print(
        f"{n_events} events through the pipeline in {pipeline_s:.2f}s ({report['events_per_second']} events/s); "
        f"{elapsed:.2f}s with the counter flush and rollups", highlight=False,
    )


@command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--project", "project_id", type=int, default=None, help="project id (default: from the envelope DSN)")
@click.option("--node", default=None, help="pin publishing to one broker node HOST:PORT")
@json_option
def send(files: tuple[Path, ...], project_id: int | None, node: str | None, as_json: bool) -> None:
    """Submit events from JSON files (one event, or a list) or Sentry envelope files.

    Exits 1 when a file or an event was rejected; the good ones are still accepted."""
    rt = open_rt()
    if node:
        rt.pin_node(node)
    report: list[dict[str, Any]] = []
    accepted = 0
    failed = False
    for path in files:
        try:
            pid, events, envelope = read_event_file_full(path, project_id)
        except InvalidEvent as exc:  # one bad file: report it, send the others
            failed = True
            report.append({"file": str(path), "error": str(exc), "reason": exc.reason, "field": exc.field})
            err.print(f"[red]{exc.field}[/red]: {exc.detail}", soft_wrap=True)
            continue
        result = submit_many(rt, pid, events) if events else SubmitResult()
        attachments: list[str] = []
        if envelope is not None and envelope.attachments:  # stored beside the body, as over HTTP
            target = envelope.event_id or next(iter(result.accepted + result.duplicates), None)
            if target:
                attachments = store_attachments(rt.store, pid, target, envelope.attachments)
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
                "attachments": attachments,
                "dropped_items": envelope.other_items if envelope is not None else {},
                "rejected": [{"index": r.index, "reason": r.reason, "field": r.field, "detail": r.detail} for r in result.rejected],
            }
        )
    if accepted:
        finish_work(rt, accepted, show_progress=not as_json)
    if as_json:
        emit_json({"files": report, "accepted": accepted})
    else:
        click.echo(f"accepted {accepted} event(s) from {len(files)} file(s)")
    if failed:
        sys.exit(ExitCode.FAILED)


@command()
@click.option("--flush", is_flag=True, help="first apply pending buffered counters")
@json_option
def stats(flush: bool, as_json: bool) -> None:
    """Totals in the store: events, bodies, issues."""
    rt = open_rt()
    if flush:
        apply_periodic_now(rt)
    report = store_totals(rt.db, rt.store)
    if as_json:
        emit_json(report)
        return
    print_issues(report["issues"][:25], total=len(report["issues"]))
    print_totals(report)


__all__ = ["demo", "send", "stats"]
