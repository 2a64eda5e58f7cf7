"""Every figure of the hot path beside its baseline, measured in one run:

    .venv/bin/python -m benchmarks pipeline                 # full run (60,000 no-op tasks, 20,000 events (Celery pipeline 3,000), 60 s steady)
    .venv/bin/python -m benchmarks pipeline --quick         # tiny counts: proves the command works
    .venv/bin/python -m benchmarks pipeline --only pipeline-eventpipe,pipeline-limit --events 2000 --json out.json

Rows (all on the machine's RabbitMQ and Postgres, unique queues, throwaway databases):

    raw, dramatiq, celery, eventpipe   no-op tasks, consume rate (benchmarks/tasks.py)
    eventpipe-batch                    a @task(batch=True) no-op fed with enqueue_many; items/s
    pipeline-eventpipe                 demo events via submit_many, `eventpipe worker --processes 2`
    pipeline-celery                    the same events and work, Celery wired the 2017 way (prefork -c 2)
    pipeline-limit                     minimal pika -> Postgres batch consumer: the physical limit
    ingest-http                        N concurrent clients posting store events to `eventpipe ingest serve`
    steady                             submit_many at a fixed rate with workers running; p50/p99 submit -> saved
    large-embedded                     ~50 KB SDK-sized events, embedded mode (SQLite, in-process broker), one process
    large-rabbitmq                     the same events on RabbitMQ + Postgres, `eventpipe worker --processes 2`

The summary table puts each eventpipe figure beside its baseline and the target of the issue;
every row also reports its CPU seconds and the resident memory of its workers after the run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Table, fmt, loadavg, log, machine
from benchmarks.tasks import (
    Ctx,
    PipelineResult,
    TaskResult,
    install_sigterm,
    setup_table,
    task_table,
)

NOOP_ROWS = ["raw", "dramatiq", "celery", "eventpipe", "eventpipe-batch"]
PIPELINE_ROWS = ["pipeline-eventpipe", "pipeline-celery", "pipeline-limit"]
LARGE_ROWS = ["large-embedded", "large-rabbitmq"]
ROWS = [*NOOP_ROWS, *PIPELINE_ROWS, "ingest-http", "steady", *LARGE_ROWS]
OPTIONAL = ["celery-p1"]  # accepted by --only, not run by default


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "—"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "no")


def summary(tasks: dict[str, TaskResult], pipes: dict[str, PipelineResult], ingest: Any, steady: Any,
            large: dict[str, Any] | None = None) -> tuple[Table, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []

    def add(figure: str, value: float | None, unit: str, baseline: str, base: float | None, target: float | None = None,
            higher: bool = True, target_is_ratio: bool = False) -> None:
        ratio = value / base if value and base else None
        judged = ratio if target_is_ratio else value
        ok = None if target is None or judged is None else (judged >= target if higher else judged <= target)
        rows.append({"figure": figure, "eventpipe": value, "unit": unit, "baseline": baseline, "baseline_value": base,
                     "ratio": ratio, "target": target, "target_is_ratio": target_is_ratio, "higher_is_better": higher, "met": ok})

    ep = tasks.get("eventpipe")
    if ep:
        for name, target in (("raw", None), ("dramatiq", 1.5), ("celery", 5.0), ("celery-p1", 5.0)):
            if name in tasks:
                add("no-op tasks consumed/s", ep.e2e_rate, "tasks/s", name, tasks[name].e2e_rate, target, target_is_ratio=True)
    b = tasks.get("eventpipe-batch")
    if b:
        for name in ("raw", "dramatiq", "eventpipe"):
            if name in tasks:
                add("batch no-op items/s", b.e2e_rate, "items/s", name, tasks[name].e2e_rate)
    pe = pipes.get("pipeline-eventpipe")
    if pe:
        add("pipeline saved events/s", pe.events_per_s, "events/s", "(target)", None, 2000.0)
        for name, target in (("pipeline-celery", None), ("pipeline-limit", 0.5)):
            if name in pipes:
                add("pipeline saved events/s", pe.events_per_s, "events/s", name, pipes[name].events_per_s, target, target_is_ratio=True)
        cpu = 1000 * pe.worker_cpu_s / max(pe.accepted, 1)
        base = pipes.get("pipeline-celery")
        add("pipeline worker CPU per event", cpu, "ms", "pipeline-celery" if base else "(target)",
            1000 * base.worker_cpu_s / max(base.accepted, 1) if base else None, 0.5, higher=False)
    if ingest:
        add("HTTP ingest accepted/s", ingest.rps, "req/s", "(target)", None, 2000.0)
        add("HTTP ingest p99 latency", ingest.p99_ms, "ms", "(target)", None, 100.0, higher=False)
    if steady:
        add(f"steady {steady.target_rate:,.0f}/s: p99 submit -> saved", steady.p99_ms, "ms", "(target)", None, 1000.0, higher=False)
    for name, lr in (large or {}).items():
        mode = name.removeprefix("large-")
        add(f"large (~50 KB) saved events/s, {mode}", lr.events_per_s, "events/s", "(target)", None, 300.0)
        add(f"large (~50 KB) raw JSON MB/s, {mode}", lr.mb_per_s, "MB/s", "—", None)
        add(f"large (~50 KB) worker CPU per event, {mode}", lr.cpu_ms_per_event, "ms", "pipeline-eventpipe (small)" if pe else "—",
            1000 * pe.worker_cpu_s / max(pe.accepted, 1) if pe else None, higher=False)
    table = Table(
        ["figure", "eventpipe", "unit", "baseline", "baseline value", "eventpipe ÷ baseline", "target", "met"],
        [[r["figure"], fmt(r["eventpipe"], 1 if r["unit"] in ("ms", "MB/s") else 0), r["unit"], r["baseline"],
          fmt(r["baseline_value"], 1 if r["unit"] in ("ms", "MB/s") else 0),
          "—" if r["ratio"] is None else f"{r['ratio']:.2f}x",
          "—" if r["target"] is None else (("≥ " if r["higher_is_better"] else "≤ ") + (f"{r['target']:g}x" if r["target_is_ratio"] else f"{r['target']:,g}")),
          _met(r["met"])] for r in rows],
        "Summary: eventpipe beside its baselines, same run",
    )
    return table, rows


def pipeline_table(results: list[PipelineResult]) -> Table:
    rows = [[
        r.db, f"{r.accepted:,}", fmt(r.submit_rate), fmt(r.events_per_s), fmt(r.p50_ms), fmt(r.p99_ms), fmt(r.max_ms),
        fmt(r.worker_cpu_s, 1), fmt(1000 * r.worker_cpu_s / max(r.accepted, 1), 2), fmt(r.broker_cpu_s, 1), fmt(r.db_cpu_s, 1),
        fmt(r.submit_cpu_s, 1), fmt(r.worker_rss_mb), r.load, r.note,
    ] for r in results]
    return Table(
        ["row", "events", "submit events/s", "saved events/s", "p50 ms", "p99 ms", "max ms", "worker CPU s", "worker CPU ms/event",
         "broker CPU s", "Postgres CPU s", "submitter CPU s", "worker RSS MiB", "load 1/5/15", "note"],
        rows, "Event pipeline end to end on RabbitMQ + Postgres (saved = row seen in `events`)",
    )


def ingest_table(r: Any) -> Table:
    return Table(
        ["clients", "requests", "200s", "accepted req/s", "p50 ms", "p99 ms", "max ms", "server CPU s", "server CPU ms/req",
         "client CPU s", "broker CPU s", "Postgres CPU s", "server RSS MiB", "load 1/5/15", "note"],
        [[str(r.clients), f"{r.sent:,}", f"{r.ok:,}", fmt(r.rps), fmt(r.p50_ms, 1), fmt(r.p99_ms, 1), fmt(r.max_ms, 1),
          fmt(r.server_cpu_s, 1), fmt(1000 * r.server_cpu_s / max(r.ok, 1), 2), fmt(r.client_cpu_s, 1), fmt(r.broker_cpu_s, 1),
          fmt(r.db_cpu_s, 1), fmt(r.server_rss_mb), r.load, r.note]],
        "HTTP ingest: " + r.setup,
    )


def steady_table(r: Any) -> Table:
    return Table(
        ["target events/s", "achieved events/s", "seconds", "accepted", "saved", "p50 ms", "p99 ms", "max ms",
         "max submit lag ms", "worker CPU s", "worker RSS MiB", "load 1/5/15", "note"],
        [[fmt(r.target_rate), fmt(r.achieved_rate), fmt(r.seconds), f"{r.accepted:,}", f"{r.saved:,}", fmt(r.p50_ms), fmt(r.p99_ms),
          fmt(r.max_ms), fmt(r.max_submit_lag_ms), fmt(r.worker_cpu_s, 1), fmt(r.worker_rss_mb), r.load, r.note]],
        "Steady-rate latency, submit -> saved: " + r.setup,
    )


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "eventpipe"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return (r.stdout.strip() or "?") + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help=f"comma list of rows: {','.join(ROWS + OPTIONAL)} (default: all but {','.join(OPTIONAL)})")
    ap.add_argument("--n", type=int, default=60_000,
                    help="no-op tasks per system (60,000: eventpipe drains 20,000 in under a second, too short to time)")
    ap.add_argument("--batch-items", type=int, default=200_000,
                    help="items for the batch no-op row (200,000: at ~500 items a message, fewer would be over before it can be timed)")
    ap.add_argument("--events", type=int, default=20_000,
                    help="events per pipeline row (20,000: with 5,000 the ~1 s it takes the first batches to cross "
                         "three queues is a third of the run, and the rate measures that fill time, not the pipeline)")
    ap.add_argument("--celery-events", type=int, default=3_000,
                    help="events for pipeline-celery (3,000: one event per message at ~40/s, its rate is flat from the "
                         "first second; 20,000 would take ten minutes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (32)")
    ap.add_argument("--requests", type=int, default=20_000, help="HTTP requests at most (20,000)")
    ap.add_argument("--ingest-seconds", type=float, default=60.0, help="HTTP load at most this long (60)")
    ap.add_argument("--steady-rate", type=float, default=500.0, help="events/s of the steady row (500)")
    ap.add_argument("--steady-seconds", type=float, default=60.0, help="length of the steady row (60)")
    ap.add_argument("--steady-tick-ms", type=float, default=20.0, help="submit every this many ms (20)")
    ap.add_argument("--large-events", type=int, default=2_000, help="~50 KB events per large row (2,000)")
    ap.add_argument("--large-chunk", type=int, default=100, help="events per submit_many call in the large rows (100)")
    ap.add_argument("--limit-consumers", type=int, default=2)
    ap.add_argument("--limit-prefetch", type=int, default=1000)
    ap.add_argument("--limit-batch", type=int, default=500)
    ap.add_argument("--raw-prefetch", type=int, default=100)
    ap.add_argument("--quick", action="store_true",
                    help="tiny counts (300 tasks, 200 events, 5 s of HTTP, 3 s steady at 50/s, 30 large events)")
    ap.add_argument("--json", type=Path, default=None, help="also write every result as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args(argv)
    install_sigterm()
    if args.quick:
        args.n, args.batch_items, args.events, args.requests, args.ingest_seconds = 300, 3000, 200, 300, 5.0
        args.celery_events = 200
        args.steady_rate, args.steady_seconds, args.large_events = 50.0, 3.0, 30
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or ROWS
    unknown = set(chosen) - set(ROWS + OPTIONAL)
    if unknown:
        ap.error(f"unknown rows: {', '.join(sorted(unknown))}")
    from benchmarks import large_rows as lr
    from benchmarks import pipeline_rows as pr
    from benchmarks.batch_noop import run_batch_noop
    from benchmarks.tasks import run_system

    workdir = Path(tempfile.mkdtemp(prefix="eventpipe-bench-"))
    ctx = Ctx(workdir=workdir, keep=args.keep)
    started, load_start, commit = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), loadavg(), _commit()
    log(f"work folder {workdir}; eventpipe at {commit}; load {load_start}")
    tasks: dict[str, TaskResult] = {}
    pipes: dict[str, PipelineResult] = {}
    ingest = steady = None
    large: dict[str, Any] = {}
    failed: list[str] = []

    def attempt(row: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - report and go on with the other rows
            failed.append(row)
            log(f"{row} FAILED: {type(exc).__name__}: {exc}")
            return None

    try:
        for row in [*NOOP_ROWS[:3], "celery-p1", *NOOP_ROWS[3:]]:
            if row not in chosen:
                continue
            if row == "eventpipe-batch":
                r = attempt(row, lambda: run_batch_noop(args.batch_items, ctx))
            else:
                r = attempt(row, lambda row=row: run_system(row, args.n, ctx, args.raw_prefetch))
            if r is not None:
                tasks[row] = r
        runners = {
            "pipeline-eventpipe": lambda: pr.run_eventpipe(args.events, args.seed, ctx),
            "pipeline-celery": lambda: pr.run_celery(args.celery_events, args.seed, ctx),
            "pipeline-limit": lambda: pr.run_limit(args.events, ctx, args.limit_consumers, args.limit_prefetch, args.limit_batch),
        }
        for row, fn in runners.items():
            if row in chosen and (r := attempt(row, fn)) is not None:
                pipes[row] = r
        if "ingest-http" in chosen:
            ingest = attempt("ingest-http", lambda: pr.run_ingest(args.clients, args.requests, args.ingest_seconds, ctx))
        if "steady" in chosen:
            steady = attempt("steady", lambda: pr.run_steady(args.steady_rate, args.steady_seconds, args.seed, args.steady_tick_ms, ctx))
        large_runners = {
            "large-embedded": lambda: lr.run_large_embedded(args.large_events, args.seed, args.large_chunk, ctx),
            "large-rabbitmq": lambda: lr.run_large_rabbitmq(args.large_events, args.seed, args.large_chunk, ctx),
        }
        for row, fn in large_runners.items():
            if row in chosen and (r := attempt(row, fn)) is not None:
                large[row] = r
    finally:
        if failed or args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    m = machine()
    command = "python -m benchmarks pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\ncommand: `{command.strip()}`")
    print(f"machine: {m['cores']} cores, {m['memory']}, Python {m['python']}, RabbitMQ {m['rabbitmq']}; eventpipe at {commit}; "
          f"{started}; load at start {load_start}, at end {loadavg()}\n")
    table, summary_rows = summary(tasks, pipes, ingest, steady, large)
    if summary_rows:
        print(table.markdown() + "\n")
    if tasks:
        print(task_table(list(tasks.values())).markdown() + "\n")
        print(setup_table(list(tasks.values())).markdown() + "\n")
    if pipes:
        print(pipeline_table(list(pipes.values())).markdown() + "\n")
    if ingest:
        print(ingest_table(ingest).markdown() + "\n")
    if steady:
        print(steady_table(steady).markdown() + "\n")
    if large:
        print(lr.large_table(list(large.values())).markdown() + "\n")
    if failed:
        print(f"FAILED rows: {', '.join(failed)} (logs in {workdir})\n")
    if args.json:
        args.json.write_text(json.dumps({
            "command": command.strip(), "machine": m, "commit": commit, "started": started, "load_start": load_start, "load_end": loadavg(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "summary": summary_rows, "tasks": [asdict(r) for r in tasks.values()], "pipeline": [asdict(r) for r in pipes.values()],
            "ingest": asdict(ingest) if ingest else None, "steady": asdict(steady) if steady else None,
            "large": [asdict(r) for r in large.values()], "failed": failed,
        }, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
