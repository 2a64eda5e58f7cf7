"""No-op task throughput side by side on the machine's RabbitMQ, then the event pipeline end to end.

    .venv/bin/python -m benchmarks tasks                    # 20,000 tasks each, 5,000 pipeline events
    .venv/bin/python -m benchmarks tasks --quick            # a few hundred: proves the command works
    .venv/bin/python -m benchmarks tasks --only eventpipe,dramatiq --n 50000 --profile /tmp/prof

Method, the same for every system: publish N messages to a fresh uniquely named queue with the
system's own client in a separate process, no consumer running (publish rate = N / publish time,
the client's own start-up excluded); then start its workers (2 processes) and poll the queue depth
by passive declare every 10 ms. The consume rate is taken from the moment 10 % of the backlog is
gone (so worker start-up - imports, connecting, the second process coming up later - is not
counted) to the moment the depth first reads 0 (confirmed three times): consumed / time. Passive
declare counts *ready* messages, so at that moment up to prefetch x processes messages (32 for
eventpipe and Dramatiq) may still be in flight: < 0.2 % of N. CPU seconds over the same window come
from psutil: the workers' process trees and the machine's RabbitMQ (beam.smp, user rabbitmq).
Queues are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import (
    AMQP_URL,
    VENV_BIN,
    CpuMeter,
    DepthProbe,
    Table,
    bench_env,
    fmt,
    loadavg,
    log,
    machine_broker_pid,
    spawn,
    stop,
    tree_rss_mb,
    unique,
)
from benchmarks.sqlwatch import RowWatcher, create_pg_db, drop_pg_db, postgres_pid

SYSTEMS = ["raw", "dramatiq", "celery-p1", "celery", "eventpipe"]
PIPELINES = ["pipeline-postgres", "pipeline-sqlite"]


@dataclass
class TaskResult:
    system: str
    setup: str
    n: int
    publish_rate: float
    e2e_rate: float
    publisher_cpu_s: float
    worker_cpu_s: float
    broker_cpu_s: float
    load: str
    note: str = ""
    worker_rss_mb: float | None = None
    items_per_message: float = 1.0

    @property
    def worker_ms_per_task(self) -> float | None:
        """None when nothing was timed (the prefetch took the whole backlog before the clock started)."""
        return 1000 * self.worker_cpu_s / self.n if self.n else None

    @property
    def broker_ms_per_task(self) -> float | None:
        return 1000 * self.broker_cpu_s / self.n if self.n else None


@dataclass
class PipelineResult:
    db: str
    submitted: int
    accepted: int
    submit_rate: float
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    submit_cpu_s: float
    worker_cpu_s: float
    broker_cpu_s: float
    db_cpu_s: float | None
    load: str
    drained_s: float
    note: str = ""
    worker_rss_mb: float | None = None


@dataclass
class Ctx:
    workdir: Path
    profile: Path | None = None
    keep: bool = False
    pipeline_threads: int = 8
    pipeline_prefetch: int = 0
    results: list[Any] = field(default_factory=list)


def _profiled(cmd: list[str], ctx: Ctx, name: str) -> list[str]:
    if ctx.profile is None:
        return cmd
    ctx.profile.mkdir(parents=True, exist_ok=True)
    return [str(VENV_BIN / "py-spy"), "record", "-r", "200", "-o", str(ctx.profile / f"{name}.txt"), "-f", "raw", "--subprocesses", "--", *cmd]


def _stop_workers(proc: subprocess.Popen[Any], ctx: Ctx) -> None:
    """Stop the worker; under py-spy stop the profiled command first so py-spy writes its file."""
    if ctx.profile is not None and proc.poll() is None:
        try:
            kids = psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            kids = []
        for k in kids:
            try:
                k.terminate()
            except psutil.NoSuchProcess:
                pass
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    stop(proc)


def _publish(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "benchmarks.publish", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=str(Path(__file__).resolve().parent.parent))
    if r.returncode != 0:
        raise RuntimeError(f"publisher {args[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_system(system: str, n: int, ctx: Ctx, raw_prefetch: int) -> TaskResult:
    probe = DepthProbe()
    logf = ctx.workdir / f"{system}.log"
    env = bench_env()
    cleanup_queues: list[str] = []
    cleanup_exchanges: list[str] = []
    note = ""
    if system == "raw":
        queue = unique("bench-raw-")
        cleanup_queues = [queue]
        cmds = [[sys.executable, "-m", "benchmarks.raw_consumer", AMQP_URL, queue, str(raw_prefetch)] for _ in range(2)]
        setup = f"pika SelectConnection publisher, confirm window 1,000; 2 consumer processes, basic_consume prefetch {raw_prefetch}, ack each"
        pub = ["raw", str(n), queue]
    elif system == "dramatiq":
        queue = unique("bench-dq-")
        cleanup_queues = [queue, f"{queue}.DQ", f"{queue}.XQ"]
        env.update(BENCH_QUEUE=queue)
        cmds = [[str(VENV_BIN / "dramatiq"), "benchmarks.dramatiq_app", "--processes", "2", "--threads", "8", "--queues", queue]]
        setup = "RabbitmqBroker defaults (no publisher confirms), `dramatiq` CLI 2 processes x 8 threads (prefetch 16/process)"
        pub = ["dramatiq", str(n), queue]
    elif system in ("celery", "celery-p1"):
        queue = unique("bench-celery-")
        cleanup_queues = [queue]
        cleanup_exchanges = [queue]
        prefetch = "1" if system == "celery-p1" else "4"
        env.update(BENCH_QUEUE=queue, BENCH_PREFETCH=prefetch)
        cmds = [[str(VENV_BIN / "celery"), "-A", "benchmarks.celery_app", "worker", "-c", "2", "-P", "prefork", "-Q", queue,
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]]
        setup = f"acks_late, JSON, prefetch multiplier {prefetch}{' (default)' if prefetch == '4' else ''}, prefork 2 processes; no publisher confirms (default)"
        pub = ["celery", str(n), queue]
    elif system == "eventpipe" or system.startswith("eventpipe-pf"):
        prefix = unique("bench-ep-") + "."
        home = ctx.workdir / f"home-{prefix.strip('.')}"
        home.mkdir()
        queue = prefix + "bench"
        cleanup_queues = [queue, queue + ".dlq"]
        env.update(
            EVENTPIPE_BROKER_URL=AMQP_URL, EVENTPIPE_QUEUE_PREFIX=prefix, EVENTPIPE_HOME=str(home),
            EVENTPIPE_TASK_MODULES="benchmarks.bench_tasks",
        )
        cmds = [[str(VENV_BIN / "eventpipe"), "worker", "--queues", "bench", "--processes", "2", "--threads", "8"]]
        if system.startswith("eventpipe-pf"):
            cmds[0] += ["--prefetch", system.removeprefix("eventpipe-pf")]
            setup = f"as eventpipe, with `--prefetch {system.removeprefix('eventpipe-pf')}`"
        else:
            from eventpipe.config import Settings

            default = Settings.model_fields["prefetch"].default
            setup = (f"Runtime.enqueue_many (confirm window 1,000); `eventpipe worker --processes 2 --threads 8`, "
                     f"default prefetch (EVENTPIPE_PREFETCH={default} per consumer)")
        pub = ["eventpipe", str(n)]
        # migrate once before two workers race for it on a fresh SQLite file
        from eventpipe.metadata.db import Database

        db = Database(f"sqlite:///{home / 'metadata.sqlite3'}")
        db.upgrade()
        db.dispose()
    else:
        raise ValueError(system)

    broker_pid = machine_broker_pid()
    procs: list[subprocess.Popen[Any]] = []
    try:
        # 1. the backlog, published by the system's own client with no consumer running
        res = _publish(pub, env, timeout=max(600, n / 50))
        published = res["n"]
        have = probe.depth(queue)
        if have < published:
            raise RuntimeError(f"{system}: {have} of {published} messages in {queue} after publishing")
        publish_rate = res["timed"] / (res["t1"] - res["t0"])
        # 2. the workers drain it; the rate is taken from 10 % consumed to empty, so start-up
        #    (imports, connecting, the second process coming up later) is not counted
        load = loadavg()
        procs = [spawn(_profiled(c, ctx, f"{system}-{i}"), env, logf) for i, c in enumerate(cmds)]
        deadline = time.monotonic() + max(600, n / 20)
        while (depth_at := probe.depth(queue)) > 0.9 * published:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{system} workers exited with {p.returncode}; see {logf}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{system}: workers did not start consuming")
            time.sleep(0.01)
        t_from = time.monotonic()
        workers = CpuMeter(lambda: [p.pid for p in procs]).start()
        broker = CpuMeter(lambda: [broker_pid] if broker_pid else []).start()
        t_empty = probe.wait_empty([queue], timeout=max(600, n / 20), interval=0.01)
        rss = tree_rss_mb([p.pid for p in procs])
        worker_cpu, broker_cpu = workers.stop(), broker.stop()
        consumed = depth_at
        if consumed < 0.5 * published:
            note = f"prefetch took {published - consumed:,} at once: too few messages for this prefetch"
        r = TaskResult(
            system=system, setup=setup, n=consumed,
            publish_rate=publish_rate, e2e_rate=consumed / (t_empty - t_from),
            publisher_cpu_s=res["cpu_s"], worker_cpu_s=worker_cpu, broker_cpu_s=broker_cpu, load=load, note=note,
            worker_rss_mb=rss,
        )
        log(f"{system}: publish {r.publish_rate:,.0f}/s, consume {r.e2e_rate:,.0f}/s over {consumed:,} tasks, worker CPU {worker_cpu:.1f}s, broker CPU {broker_cpu:.1f}s (load {load})")
        return r
    finally:
        for p in procs:
            _stop_workers(p, ctx)
        probe.delete(*cleanup_queues)
        probe.delete_exchange(*cleanup_exchanges)
        probe.close()


# -- the event pipeline -------------------------------------------------------------------------------
def run_pipeline(db_kind: str, n_events: int, seed: int, ctx: Ctx) -> PipelineResult:
    from eventpipe.metadata.db import Database
    from eventpipe.queues.topology import DELAY_BUCKETS_MS, Topology
    from eventpipe.tasks.api import load_catalogue

    prefix = unique("bench-pipe-") + "."
    home = ctx.workdir / f"home-{prefix.strip('.')}"
    home.mkdir()
    pg_handle = None
    if db_kind == "postgres":
        db_url, pg_handle = create_pg_db()
    else:
        db_url = f"sqlite:///{home / 'metadata.sqlite3'}"
    env = bench_env(
        EVENTPIPE_BROKER_URL=AMQP_URL, EVENTPIPE_QUEUE_PREFIX=prefix, EVENTPIPE_HOME=str(home), EVENTPIPE_DATABASE_URL=db_url,
    )
    topo = Topology(prefix)
    logical = load_catalogue().queues()
    queues = [topo.queue(q) for q in logical]
    probe = DepthProbe()
    broker_pid = machine_broker_pid()
    pg_pid = postgres_pid() if db_kind == "postgres" else None
    proc = None
    try:
        db = Database(db_url)
        db.upgrade()
        db.dispose()
        cmd = [str(VENV_BIN / "eventpipe"), "worker", "--processes", "2", "--threads", str(ctx.pipeline_threads)]
        if ctx.pipeline_prefetch:
            cmd += ["--prefetch", str(ctx.pipeline_prefetch)]
        proc = spawn(_profiled(cmd, ctx, f"pipeline-{db_kind}"), env, ctx.workdir / f"pipeline-{db_kind}.log")
        probe.wait_consumers(topo.queue("events"), 2, procs=[proc])
        probe.wait_consumers(topo.queue("events.save"), 2, procs=[proc])
        time.sleep(1.0)
        load = loadavg()
        watcher = RowWatcher(db_url).start()
        workers = CpuMeter(lambda: [proc.pid]).start()
        broker = CpuMeter(lambda: [broker_pid] if broker_pid else []).start()
        dbm = CpuMeter(lambda: [pg_pid] if pg_pid else []).start()
        res = _publish(["pipeline", str(n_events), str(seed)], env, timeout=1800)
        accepted = res["accepted"]
        deadline = time.monotonic() + max(600, accepted / 20)
        while len(watcher.latencies) < accepted and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"workers exited with {proc.returncode}; see {ctx.workdir}")
            time.sleep(0.1)
        t_drained = probe.wait_empty(queues, timeout=300)
        drained_wall = time.time() - (time.monotonic() - t_drained)
        watcher.stop()
        rss = tree_rss_mb([proc.pid])
        worker_cpu, broker_cpu, db_cpu = workers.stop(), broker.stop(), dbm.stop()
        lat = sorted(watcher.latencies)
        if len(lat) < accepted:
            log(f"pipeline {db_kind}: only {len(lat)} of {accepted} events saved before the deadline")
        q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0] if lat else 0.0] * 99
        r = PipelineResult(
            db=db_kind, submitted=n_events, accepted=accepted,
            submit_rate=accepted / (res["t1"] - res["t0"]),
            events_per_s=len(lat) / (watcher.last_seen_wall - res["t0"]),
            p50_ms=1000 * statistics.median(lat), p99_ms=1000 * q[98], max_ms=1000 * lat[-1],
            submit_cpu_s=res["cpu_s"], worker_cpu_s=worker_cpu, broker_cpu_s=broker_cpu,
            db_cpu_s=db_cpu if pg_pid else None, load=load, drained_s=drained_wall - res["t0"],
            note="" if len(lat) == accepted else f"only {len(lat)}/{accepted} saved in time",
            worker_rss_mb=rss,
        )
        log(f"pipeline {db_kind}: {r.events_per_s:,.0f} events/s, p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms (load {load})")
        return r
    finally:
        if proc is not None:
            _stop_workers(proc, ctx)
        names = [*queues, *(topo.dead_letter(q) for q in logical), *(topo.delay(q, b) for q in logical for b in DELAY_BUCKETS_MS)]
        try:
            probe.delete(*names)
            probe.close()
        finally:
            if pg_handle is not None:
                drop_pg_db(pg_handle)


def install_sigterm() -> None:
    """SIGTERM (a CI timeout, `timeout`) unwinds like Ctrl-C, so every finally: block stops the
    workers it started and deletes its queues and databases."""
    import signal

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


# -- report -------------------------------------------------------------------------------------------
def task_table(results: list[TaskResult], title: str = "", ratios: bool = True) -> Table:
    ep = next((r for r in results if r.system == "eventpipe"), None) if ratios else None
    rows = []
    for r in results:
        ratio = "—" if ep is None or r is ep or not r.e2e_rate else f"{ep.e2e_rate / r.e2e_rate:.2f}x"
        rows.append([
            r.system, f"{r.n:,}", fmt(r.publish_rate), fmt(r.e2e_rate), ratio,
            fmt(r.worker_cpu_s, 1), fmt(r.worker_ms_per_task, 3), fmt(r.broker_cpu_s, 1), fmt(r.broker_ms_per_task, 3),
            fmt(r.publisher_cpu_s, 1), fmt(r.worker_rss_mb), r.load,
        ])
    return Table(
        ["system", "tasks timed", "publish/s", "consume/s", "eventpipe ÷ this", "worker CPU s", "worker CPU ms/task",
         "broker CPU s", "broker CPU ms/task", "publisher CPU s", "worker RSS MiB", "load 1/5/15"],
        rows, "No-op tasks on the machine's RabbitMQ, same run" + (f" ({title})" if title else ""),
    )


def setup_table(results: list[TaskResult]) -> Table:
    return Table(["system", "setup"], [[r.system, r.setup] for r in results])


def pipeline_table(results: list[PipelineResult]) -> Table:
    rows = [[
        r.db, f"{r.submitted:,}", f"{r.accepted:,}", fmt(r.submit_rate), fmt(r.events_per_s), fmt(r.p50_ms), fmt(r.p99_ms), fmt(r.max_ms),
        fmt(r.worker_cpu_s, 1), fmt(r.broker_cpu_s, 1), fmt(r.db_cpu_s, 1), fmt(r.submit_cpu_s, 1), fmt(r.worker_rss_mb), r.load,
    ] for r in results]
    return Table(
        ["metadata DB", "events submitted", "accepted", "submit events/s", "saved events/s", "p50 ms", "p99 ms", "max ms",
         "worker CPU s", "broker CPU s", "Postgres CPU s", "submitter CPU s", "worker RSS MiB", "load 1/5/15"],
        rows, "Event pipeline end to end (submit_many -> preprocess -> process -> save [-> post_process])",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks tasks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="no-op tasks per system (default 20,000)")
    ap.add_argument("--events", type=int, default=5_000, help="events through the pipeline (default 5,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help=f"comma list of {','.join(SYSTEMS + PIPELINES)}")
    ap.add_argument("--raw-prefetch", type=int, default=100, help="raw consumers' prefetch (default 100: with 1000, 2 x 1000 in flight would blur the depth-based timing)")
    ap.add_argument("--ep-prefetch", default="16", help="extra eventpipe rows with `worker --prefetch P` (comma list; '' for none)")
    ap.add_argument("--pipeline-threads", type=int, default=8, help="threads per worker process in the pipeline run (default 8)")
    ap.add_argument("--pipeline-prefetch", type=int, default=0, help="worker --prefetch in the pipeline run (default: eventpipe's)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all systems (interleaved); the table shows each system's best round")
    ap.add_argument("--quick", action="store_true", help="300 tasks, 200 events: only proves the command works")
    ap.add_argument("--profile", type=Path, default=None, help="run workers under py-spy, raw output in this folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = ap.parse_args(argv)
    install_sigterm()
    if args.quick:
        args.n, args.events = 300, 200
    extra = [f"eventpipe-pf{p.strip()}" for p in args.ep_prefetch.split(",") if p.strip()]
    systems = SYSTEMS + extra
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or systems + PIPELINES
    unknown = {c for c in chosen if not c.startswith("eventpipe-pf")} - set(SYSTEMS + PIPELINES)
    systems += [c for c in chosen if c.startswith("eventpipe-pf") and c not in systems]
    if unknown:
        ap.error(f"unknown: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="eventpipe-bench-"))
    ctx = Ctx(workdir=workdir, profile=args.profile, keep=args.keep, pipeline_threads=args.pipeline_threads, pipeline_prefetch=args.pipeline_prefetch)
    log(f"work folder {workdir}; load {loadavg()}")
    task_results: list[TaskResult] = []
    all_rounds: list[TaskResult] = []
    pipe_results: list[PipelineResult] = []
    failed = False
    try:
        best: dict[str, TaskResult] = {}
        for round_ in range(args.repeat):
            for s in systems:
                if s in chosen:
                    try:
                        r = run_system(s, args.n, ctx, args.raw_prefetch)
                        all_rounds.append(r)
                        if s not in best or r.e2e_rate > best[s].e2e_rate:
                            best[s] = r
                    except Exception as exc:  # noqa: BLE001 - report and go on with the others
                        failed = True
                        log(f"{s} FAILED: {type(exc).__name__}: {exc}")
        task_results = [best[s] for s in systems if s in best]
        for p in PIPELINES:
            if p in chosen:
                try:
                    pipe_results.append(run_pipeline(p.split("-", 1)[1], args.events, args.seed, ctx))
                except Exception as exc:  # noqa: BLE001
                    failed = True
                    log(f"{p} FAILED: {type(exc).__name__}: {exc}")
    finally:
        if not args.keep and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
        elif failed:
            log(f"logs kept in {workdir}")
    print(f"\nmachine: {os.cpu_count()} cores, load at end {loadavg()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    if task_results:
        if args.repeat > 1:
            print(task_table(all_rounds, "Every round, in order", ratios=False).markdown())
            print()
        print(task_table(task_results, "Best round per system" if args.repeat > 1 else "").markdown())
        print()
        print(setup_table(task_results).markdown())
        print()
    if pipe_results:
        print(pipeline_table(pipe_results).markdown())
        print()
    if args.json:
        args.json.write_text(json.dumps({"tasks": [asdict(r) for r in task_results], "rounds": [asdict(r) for r in all_rounds], "pipeline": [asdict(r) for r in pipe_results]}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
