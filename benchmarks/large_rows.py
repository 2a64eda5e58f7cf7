"""The `large` rows of `python -m benchmarks pipeline`: SDK-sized (~50 KB) events, the shape of
``eventpipe.pipeline.demo.generate(n, seed, now=..., large=True)``, through the whole pipeline.

    large-embedded   a fresh EVENTPIPE_HOME, no broker URL: the embedded broker and SQLite, as a new
                     user runs it. One process submits the events (``eventpipe.submit_many``, chunks
                     of ``chunk``) and then runs the broker's ``run_until_idle(threads=4)``, as
                     `eventpipe demo` does; events/s = events saved / (end of processing - start
                     of submit), and its CPU and memory are that one process's.
    large-rabbitmq   RabbitMQ + Postgres, `eventpipe worker --processes 2`, the submitter in its own
                     process: the pipeline-eventpipe row's machinery (``measure_saved``), fed the
                     large events; events/s = rows seen in ``events`` / time since the submit began.

The events are written once to a JSON-lines file before any clock starts (generating 50 KB events
is not the pipeline's work, and a user's events arrive as bytes); both rows read that file and
parse each line, as `eventpipe send` parses its files. MB/s is raw JSON bytes (the file's lines)
per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from benchmarks.common import Table, bench_env, fmt, loadavg, log
from benchmarks.pipeline_rows import measure_saved
from benchmarks.stack import Stack
from benchmarks.tasks import Ctx, _publish

TARGET = 300.0  # events/s, issue 16


@dataclass
class LargeResult:
    row: str
    events: int
    accepted: int
    saved: int
    mean_event_kb: float
    seconds: float
    events_per_s: float
    mb_per_s: float
    submit_rate: float
    worker_cpu_s: float
    cpu_ms_per_event: float
    worker_rss_mb: float
    peak_rss_mb: float | None
    load: str
    setup: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""


def write_events(path: Path, n: int, seed: int) -> int:
    """``n`` large events as JSON lines (generated 200 at a time so memory stays small); returns
    the raw JSON bytes. Every event is distinct (fresh event ids), so each one is saved once."""
    from eventpipe.pipeline.demo import generate

    total = 0
    with path.open("wb") as f:
        for i, start in enumerate(range(0, n, 200)):
            for ev in generate(min(200, n - start), seed * 100_003 + i, now=time.time(), large=True):
                line = orjson.dumps(ev.payload)
                total += len(line)
                f.write(line + b"\n")
    return total


def run_large_embedded(n: int, seed: int, chunk: int, ctx: Ctx) -> LargeResult:
    path = ctx.workdir / f"large-{n}-{seed}.jsonl"
    raw = write_events(path, n, seed)
    home = ctx.workdir / "home-large-embedded"
    home.mkdir()
    load = loadavg()
    res = _publish(["large-file", str(n), str(path), "1", str(chunk)], bench_env(EVENTPIPE_HOME=str(home)), timeout=3600)
    seconds = res["t_done"] - res["t0"]
    saved = int(res["saved"])
    r = LargeResult(
        row="large-embedded", events=n, accepted=int(res["accepted"]), saved=saved, mean_event_kb=raw / max(n, 1) / 1000,
        seconds=seconds, events_per_s=saved / max(seconds, 1e-6), mb_per_s=res["raw_bytes"] / 1e6 / max(seconds, 1e-6),
        submit_rate=int(res["accepted"]) / max(res["t1"] - res["t0"], 1e-6), worker_cpu_s=res["cpu_s"],
        cpu_ms_per_event=1000 * res["cpu_s"] / max(saved, 1), worker_rss_mb=res["rss_mb"], peak_rss_mb=res["peak_rss_mb"],
        load=load, setup=f"fresh EVENTPIPE_HOME (embedded broker, SQLite, local KV); submit_many in chunks of {chunk}, "
                         "then run_until_idle(threads=4) in the same process; CPU = that process (submit included)",
        note="" if saved >= int(res["accepted"]) else f"only {saved}/{res['accepted']} saved",
    )
    log(f"large-embedded: {r.events_per_s:,.0f} events/s, {r.mb_per_s:.1f} MB/s, {r.cpu_ms_per_event:.1f} ms CPU/event, "
        f"RSS {r.worker_rss_mb:,.0f} MiB (peak {r.peak_rss_mb:,.0f}) (load {load}) {r.note}")
    path.unlink(missing_ok=True)
    return r


def run_large_rabbitmq(n: int, seed: int, chunk: int, ctx: Ctx) -> LargeResult:
    path = ctx.workdir / f"large-{n}-{seed}.jsonl"
    raw = write_events(path, n, seed)
    stack = Stack(ctx.workdir, "large-rabbitmq")
    try:
        stack.add_demo_projects()
        proc = stack.start_workers(2)
        p = measure_saved("large-rabbitmq", stack.db_url, [proc], ["large-file", str(n), str(path), "0", str(chunk)], stack.env, n)
    finally:
        stack.close()
        path.unlink(missing_ok=True)
    saved = round(p.events_per_s * p.drained_s)  # rows seen
    return LargeResult(
        row="large-rabbitmq", events=n, accepted=p.accepted, saved=saved, mean_event_kb=raw / max(n, 1) / 1000,
        seconds=p.drained_s, events_per_s=p.events_per_s, mb_per_s=p.events_per_s * raw / max(n, 1) / 1e6,
        submit_rate=p.submit_rate, worker_cpu_s=p.worker_cpu_s, cpu_ms_per_event=1000 * p.worker_cpu_s / max(saved, 1),
        worker_rss_mb=p.worker_rss_mb or 0.0, peak_rss_mb=None, load=p.load, p50_ms=p.p50_ms, p99_ms=p.p99_ms,
        setup=f"RabbitMQ + Postgres, `eventpipe worker --processes 2`; submit_many in chunks of {chunk} from its own process "
              f"(its CPU {p.submit_cpu_s:.1f} s not in the worker's)",
        note=p.note,
    )


def large_table(results: list[LargeResult]) -> Table:
    return Table(
        ["row", "events", "mean KB", "saved", "seconds", "saved events/s", "MB/s (raw JSON)", "submit events/s", "worker CPU s",
         "worker CPU ms/event", "worker RSS MiB", "peak RSS MiB", "p50 ms", "p99 ms", "load 1/5/15", "note"],
        [[r.row, f"{r.events:,}", fmt(r.mean_event_kb, 1), f"{r.saved:,}", fmt(r.seconds, 1), fmt(r.events_per_s), fmt(r.mb_per_s, 1),
          fmt(r.submit_rate), fmt(r.worker_cpu_s, 1), fmt(r.cpu_ms_per_event, 2), fmt(r.worker_rss_mb), fmt(r.peak_rss_mb),
          fmt(r.p50_ms), fmt(r.p99_ms), r.load, r.note] for r in results],
        "Large (~50 KB) events end to end: " + "; ".join(f"{r.row}: {r.setup}" for r in results),
    )

__all__ = ["TARGET", "LargeResult", "large_table", "run_large_embedded", "run_large_rabbitmq", "write_events"]
