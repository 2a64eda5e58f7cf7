"""The rows of `python -m benchmarks pipeline` beyond the no-op tasks: the event pipeline on
eventpipe, on Celery wired the 2017 way, and the hand-written limit; HTTP ingest; steady-rate
latency. Every row runs on a fresh Postgres database and unique queues (``benchmarks.stack``).

Saved events/s and submit -> saved latency are observed from outside, the same way for every
row: a ``RowWatcher`` sees each row of the ``events`` table appear and subtracts its
``received_at``. Events/s = rows seen / (last row seen - start of the submit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from benchmarks.common import (
    AMQP_URL,
    ROOT,
    VENV_BIN,
    CpuMeter,
    DepthProbe,
    bench_env,
    free_port,
    loadavg,
    log,
    machine_broker_pid,
    percentiles,
    spawn,
    tree_rss_mb,
    unique,
)
from benchmarks.sqlwatch import RowWatcher, postgres_pid
from benchmarks.stack import Stack, delete_prefixed
from benchmarks.tasks import Ctx, PipelineResult, _publish


@dataclass
class IngestResult:
    clients: int
    sent: int
    ok: int
    statuses: dict[str, int]
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float
    client_cpu_s: float
    broker_cpu_s: float
    db_cpu_s: float | None
    server_rss_mb: float
    load: str
    setup: str = ""
    note: str = ""


@dataclass
class SteadyResult:
    target_rate: float
    achieved_rate: float
    seconds: float
    accepted: int
    saved: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    max_submit_lag_ms: float
    worker_cpu_s: float
    worker_rss_mb: float
    load: str
    setup: str = ""
    note: str = ""


@dataclass
class Meters:
    procs: list[subprocess.Popen[Any]]
    broker: CpuMeter = field(init=False)
    workers: CpuMeter = field(init=False)
    db: CpuMeter = field(init=False)
    pg_pid: int | None = field(init=False)

    def __post_init__(self) -> None:
        broker_pid = machine_broker_pid()
        self.pg_pid = postgres_pid()
        self.workers = CpuMeter(lambda: [p.pid for p in self.procs]).start()
        self.broker = CpuMeter(lambda: [broker_pid] if broker_pid else []).start()
        self.db = CpuMeter(lambda: [self.pg_pid] if self.pg_pid else []).start()

    def stop(self) -> tuple[float, float, float | None, float]:
        rss = tree_rss_mb([p.pid for p in self.procs])
        return self.workers.stop(), self.broker.stop(), (self.db.stop() if self.pg_pid else None), rss


def _wait_saved(watcher: RowWatcher, expected: int, procs: list[subprocess.Popen[Any]], stall_s: float = 60.0) -> None:
    """Until ``expected`` rows were seen, a worker died, or nothing new appeared for ``stall_s``."""
    last_count, last_change = -1, time.monotonic()
    while watcher.count < expected:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[:4]} exited with {p.returncode}")
        if watcher.count != last_count:
            last_count, last_change = watcher.count, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"no new event rows for {stall_s:.0f}s: {watcher.count} of {expected} saved")
            return
        time.sleep(0.1)


def measure_saved(label: str, db_url: str, procs: list[subprocess.Popen[Any]], pub: list[str], env: dict[str, str],
                  submitted: int, interval: float = 0.05) -> PipelineResult:
    load = loadavg()
    watcher = RowWatcher(db_url, interval=interval).start()
    meters = Meters(procs)
    try:
        res = _publish(pub, env, timeout=1800)
        accepted = int(res["accepted"])
        _wait_saved(watcher, accepted, procs)
    finally:
        watcher.stop()
        worker_cpu, broker_cpu, db_cpu, rss = meters.stop()
    lat = watcher.latencies
    p50, p99, mx = percentiles(lat)
    r = PipelineResult(
        db=label, submitted=submitted, accepted=accepted, submit_rate=accepted / max(res["t1"] - res["t0"], 1e-6),
        events_per_s=len(lat) / max(watcher.last_seen_wall - res["t0"], 1e-6),
        p50_ms=1000 * p50, p99_ms=1000 * p99, max_ms=1000 * mx,
        submit_cpu_s=res["cpu_s"], worker_cpu_s=worker_cpu, broker_cpu_s=broker_cpu, db_cpu_s=db_cpu, load=load,
        drained_s=watcher.last_seen_wall - res["t0"],
        note="" if len(lat) >= accepted else f"only {len(lat)}/{accepted} saved", worker_rss_mb=rss,
    )
    log(f"{label}: {r.events_per_s:,.0f} saved events/s, p50 {r.p50_ms:,.0f} ms, p99 {r.p99_ms:,.0f} ms, "
        f"worker CPU {worker_cpu:.1f}s, RSS {rss:,.0f} MiB (load {load})")
    return r


def run_eventpipe(n: int, seed: int, ctx: Ctx) -> PipelineResult:
    """`eventpipe worker --processes 2` (its defaults otherwise), demo events via submit_many."""
    stack = Stack(ctx.workdir, "pipeline-eventpipe")
    try:
        stack.add_demo_projects()
        proc = stack.start_workers(2)
        return measure_saved("pipeline-eventpipe", stack.db_url, [proc], ["pipeline", str(n), str(seed)], stack.env, n)
    finally:
        stack.close()


def run_celery(n: int, seed: int, ctx: Ctx) -> PipelineResult:
    """The 2017 wiring (``benchmarks.celery_pipeline``), `celery worker -P prefork -c 2`."""
    stack = Stack(ctx.workdir, "pipeline-celery")
    try:
        stack.add_demo_projects()
        env = dict(stack.env, BENCH_CP_PREFIX=stack.prefix, BENCH_CP_DB=stack.db_url, BENCH_CP_KV=stack.kv_url())
        queues = [f"{stack.prefix}events.{s}" for s in ("preprocess_event", "process_event", "save_event")]
        cmd = [str(VENV_BIN / "celery"), "-A", "benchmarks.celery_pipeline", "worker", "-P", "prefork", "-c", "2",
               "-Q", ",".join(queues), "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        proc = spawn(cmd, env, ctx.workdir / "pipeline-celery.log")
        stack.procs.append(proc)
        probe = DepthProbe()
        try:
            for q in queues:
                probe.wait_consumers(q, 1, procs=[proc])
        finally:
            probe.close()
        time.sleep(1.0)
        return measure_saved("pipeline-celery", stack.db_url, [proc], ["celery-pipeline", str(n), str(seed)], env, n)
    finally:
        stack.close()


def run_limit(n: int, ctx: Ctx, consumers: int = 2, prefetch: int = 1000, batch: int = 500) -> PipelineResult:
    """``consumers`` processes of ``benchmarks.limit_consumer`` fed n reference messages."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from eventpipe.metadata.models import Issue

    stack = Stack(ctx.workdir, "pipeline-limit")
    queue = unique("bench-limit-")
    try:
        projects = stack.add_demo_projects()
        engine = create_engine(stack.db_url)
        issues: dict[int, int] = {}
        with Session(engine) as s, s.begin():
            now = datetime.now(UTC).replace(tzinfo=None)
            for pid in projects:
                issue = Issue(project_id=pid, fingerprint_hash=f"limit{pid}", title="limit", culprit="", level="error",
                              status="unresolved", first_seen=now, last_seen=now, times_seen=0)
                s.add(issue)
            s.flush()
            issues = {i.project_id: i.id for i in s.scalars(select(Issue))}
        engine.dispose()
        cmd = [sys.executable, "-m", "benchmarks.limit_consumer", AMQP_URL, queue, stack.db_url, json.dumps(issues), str(prefetch), str(batch)]
        procs = [spawn(cmd, stack.env, ctx.workdir / "pipeline-limit.log") for _ in range(consumers)]
        stack.procs += procs
        probe = DepthProbe()
        try:
            probe.wait_consumers(queue, consumers, procs=procs)
        finally:
            probe.close()
        env = dict(stack.env, BENCH_PROJECTS=",".join(map(str, projects)))
        return measure_saved("pipeline-limit", stack.db_url, procs, ["limit", str(n), queue], env, n)
    finally:
        stack.close()
        delete_prefixed(queue, [queue])


def _serve_args(stack: Stack, port: int) -> list[str]:
    args = ["ingest", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if "--rate" in stack.cli("ingest", "serve", "--help"):
        args += ["--rate", "1000000"]  # the per-project limit must not be what is measured
    return args


def run_ingest(clients: int, requests: int, seconds: float, ctx: Ctx) -> IngestResult:
    """One `eventpipe ingest serve` on RabbitMQ + Postgres, no workers running (the backlog is
    deleted afterwards); the aiohttp load generator in its own process."""
    stack = Stack(ctx.workdir, "ingest-http")
    try:
        key = stack.add_project(1, "bench-ingest")
        port = free_port()
        server = stack.start(*_serve_args(stack, port))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            stack.check_alive()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest server did not answer on {url}; see {stack.log_path}")
            time.sleep(0.2)
        load = loadavg()
        meters = Meters([server])
        try:
            r = subprocess.run(
                [sys.executable, "-m", "benchmarks.ingest_load", "--url", url, "--project", "1", "--key", key,
                 "--clients", str(clients), "--requests", str(requests), "--seconds", str(seconds)],
                env=bench_env(), cwd=str(ROOT), check=False, capture_output=True, text=True, timeout=seconds + 180,
            )
        finally:
            server_cpu, broker_cpu, db_cpu, rss = meters.stop()
        if r.returncode != 0:
            raise RuntimeError(f"load generator failed ({r.returncode}): {r.stderr[-2000:]}")
        out = json.loads(r.stdout.strip().splitlines()[-1])
        bad = {k: v for k, v in out["statuses"].items() if k != "200"}
        res = IngestResult(
            clients=clients, sent=out["sent"], ok=out["ok"], statuses=out["statuses"], rps=out["rps"],
            p50_ms=out["p50_ms"], p99_ms=out["p99_ms"], max_ms=out["max_ms"], server_cpu_s=server_cpu,
            client_cpu_s=out["cpu_s"], broker_cpu_s=broker_cpu, db_cpu_s=db_cpu, server_rss_mb=rss, load=load,
            setup=f"{clients} aiohttp clients (keep-alive), POST /api/1/store/ with X-Sentry-Auth; one `eventpipe ingest serve`, "
                  f"RabbitMQ + Postgres, no workers; up to {requests:,} requests or {seconds:.0f} s",
            note=f"non-200: {bad}" if bad else "",
        )
        log(f"ingest-http: {res.rps:,.0f} req/s, p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms, server CPU {server_cpu:.1f}s, "
            f"client CPU {res.client_cpu_s:.1f}s (load {load}) {res.note}")
        return res
    finally:
        stack.close()


def run_steady(rate: float, seconds: float, seed: int, tick_ms: float, ctx: Ctx) -> SteadyResult:
    """`eventpipe worker --processes 2` running; demo events submitted at ``rate``/s for ``seconds``."""
    stack = Stack(ctx.workdir, "steady")
    try:
        stack.add_demo_projects()
        proc = stack.start_workers(2)
        load = loadavg()
        watcher = RowWatcher(stack.db_url, interval=0.02).start()
        meters = Meters([proc])
        try:
            res = _publish(["steady", str(rate), str(seconds), str(seed), str(tick_ms)], stack.env, timeout=seconds + 600)
            _wait_saved(watcher, int(res["accepted"]), [proc], stall_s=30.0)
        finally:
            watcher.stop()
            worker_cpu, _broker, _db, rss = meters.stop()
        p50, p99, mx = percentiles(watcher.latencies)
        lag = 1000 * float(res["max_lag_s"])
        r = SteadyResult(
            target_rate=rate, achieved_rate=res["rate"], seconds=seconds, accepted=res["accepted"], saved=watcher.count,
            p50_ms=1000 * p50, p99_ms=1000 * p99, max_ms=1000 * mx, max_submit_lag_ms=lag, worker_cpu_s=worker_cpu,
            worker_rss_mb=rss, load=load,
            setup=f"submit_many every {tick_ms:.0f} ms (one call per project), `eventpipe worker --processes 2`, "
                  f"RabbitMQ + Postgres; latency = row seen (polled every 20 ms) - received_at",
            note=("" if watcher.count >= res["accepted"] else f"only {watcher.count}/{res['accepted']} saved; ")
            + (f"submitter fell {lag:,.0f} ms behind" if lag > 1000 else ""),
        )
        log(f"steady {rate:.0f}/s x {seconds:.0f}s: achieved {r.achieved_rate:,.0f}/s, p50 {r.p50_ms:,.0f} ms, "
            f"p99 {r.p99_ms:,.0f} ms, max {r.max_ms:,.0f} ms (load {load}) {r.note}")
        return r
    finally:
        stack.close()


__all__ = ["IngestResult", "SteadyResult", "run_celery", "run_eventpipe", "run_ingest", "run_limit", "run_steady"]
