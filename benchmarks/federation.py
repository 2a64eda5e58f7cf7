"""Federation drain: a backlog on node A drained by eventpipe workers on B and C vs on A itself.

    .venv/bin/python -m benchmarks federation                    # 20,000 x link prefetch 1,10,100,1000; 100,000 once
    .venv/bin/python -m benchmarks federation --sizes 5000 --prefetches 10 --big 0   # quick

Three test-owned RabbitMQ nodes (eventpipe/testing/rabbitmq.py: loopback, own ports, killed at
the end) form a mesh with ``eventpipe.queues.federation.setup(..., prefetch=P)``. For each size:

* **single node**: the backlog is published to A (``Runtime.enqueue_many`` pinned to A, confirm
  window 1,000); ``eventpipe worker --queues bench --processes 2 --threads 8 --node A`` drains it.
* **federated**: the same backlog on A; the same workers with ``--node B --node C`` (they never
  touch A): every message must cross a federation link.

Drain rate: ready messages left when the total ready count (passive declare on A, B and C) first
drops to 90 % of N, divided by the time from then to the first moment all three read 0 three times
in a row (so worker start-up is not counted, as in `benchmarks tasks`); CPU over the same window. The workers count, per delivered message, the entries of its
``x-received-from`` header (one per federation hop) - see benchmarks/bench_tasks.py - so the
multi-hop share and the total deliveries (duplicates) come from the eventpipe workers themselves.
Each scenario uses a fresh queue prefix (fresh queues, fresh policy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import CpuMeter, DepthProbe, Table, bench_env, fmt, loadavg, log, spawn, stop, unique, VENV_BIN

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DrainResult:
    mode: str
    n: int
    link_prefetch: int | None
    publish_rate: float
    drain_s: float
    drain_rate: float
    deliveries: int
    hops: dict[str, int]
    per_node: dict[str, int]
    worker_cpu_s: float
    brokers_cpu_s: float
    load: str

    @property
    def multi_hop_share(self) -> float | None:
        total = sum(self.hops.values())
        if not total:
            return None
        return sum(v for k, v in self.hops.items() if int(k) >= 2) / total


def _premigrate(home: Path) -> None:
    from eventpipe.metadata.db import Database

    db = Database(f"sqlite:///{home / 'metadata.sqlite3'}")
    db.upgrade()
    db.dispose()


def _publish_backlog(env: dict[str, str], n: int, node: str) -> dict[str, Any]:
    e = dict(env, BENCH_PIN_NODE=node)
    r = subprocess.run([sys.executable, "-m", "benchmarks.publish", "eventpipe", str(n)], env=e, capture_output=True, text=True, cwd=str(ROOT), timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"backlog publish failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _read_hops(folder: Path) -> tuple[dict[str, int], dict[str, int]]:
    hops: dict[str, int] = {}
    nodes: dict[str, int] = {}
    for f in folder.glob("*.json"):
        data = json.loads(f.read_text())
        for k, v in data["hops"].items():
            hops[k] = hops.get(k, 0) + v
        for k, v in data["nodes"].items():
            nodes[k] = nodes.get(k, 0) + v
    return hops, nodes


def run_drain(cluster: Any, workdir: Path, n: int, mode: str, link_prefetch: int) -> DrainResult:
    from eventpipe.queues.federation import setup, teardown
    from eventpipe.queues.topology import Topology

    a, b, c = cluster.nodes[:3]
    amqp = [x.amqp_url for x in (a, b, c)]
    mgmt = [x.management_url for x in (a, b, c)]
    prefix = unique("fbench-") + "."
    topo = Topology(prefix)
    home = workdir / f"home-{prefix.strip('.')}"
    home.mkdir()
    hops_dir = workdir / f"hops-{prefix.strip('.')}"
    hops_dir.mkdir()
    _premigrate(home)
    env = bench_env(
        EVENTPIPE_BROKER_URLS=",".join(amqp), EVENTPIPE_QUEUE_PREFIX=prefix, EVENTPIPE_HOME=str(home),
        EVENTPIPE_TASK_MODULES="benchmarks.bench_tasks", BENCH_HOPS_DIR=str(hops_dir),
    )
    queue = topo.queue("bench")
    probes = [DepthProbe(u) for u in amqp]
    procs: list[Any] = []
    try:
        setup(amqp, mgmt, topo, ["bench"], prefetch=link_prefetch)
        from eventpipe.queues.federation import status

        deadline = time.monotonic() + 60
        while not status(amqp, mgmt, topo).all_running:
            if time.monotonic() > deadline:
                raise RuntimeError("federation links not running after 60 s")
            time.sleep(0.3)
        pub = _publish_backlog({k: v for k, v in env.items() if k != "BENCH_HOPS_DIR"}, n, a.host_port)
        publish_rate = (n - 1) / (pub["t1"] - pub["t0"])
        while probes[0].depth(queue) < n:  # confirmed means stored; this only guards against a miscount
            time.sleep(0.05)
        log(f"{mode} n={n} link prefetch {link_prefetch}: backlog of {n:,} on A published at {publish_rate:,.0f}/s")
        base = [str(VENV_BIN / "eventpipe"), "worker", "--queues", "bench", "--threads", "8"]
        if mode == "single":
            cmds = [[*base, "--processes", "2", "--node", a.host_port]]
        elif mode == "federated":
            cmds = [[*base, "--processes", "2", "--node", b.host_port, "--node", c.host_port]]
        else:  # federated-split: one process on B, one on C (no multi-node polling in a process)
            cmds = [[*base, "--processes", "1", "--node", b.host_port], [*base, "--processes", "1", "--node", c.host_port]]
        load = loadavg()
        procs = [spawn(cmd, env, workdir / f"worker-{prefix.strip('.')}-{i}.log") for i, cmd in enumerate(cmds)]
        # timed from 10 % of the backlog gone (both worker processes up) to empty, as in `tasks`
        t_start = None
        deadline = time.monotonic() + max(600, n / 20)
        while t_start is None:
            total = sum(p.depth(queue) for p in probes)
            if total <= 0.9 * n:
                t_start, timed = time.monotonic(), total
            elif any(p.poll() is not None for p in procs):
                raise RuntimeError("workers exited early")
            elif time.monotonic() > deadline:
                raise TimeoutError("drain never started")
            else:
                time.sleep(0.01)
        brokers = CpuMeter(lambda: [x.pid for x in (a, b, c) if x.pid]).start()
        workers = CpuMeter(lambda: [p.pid for p in procs]).start()
        t_end = _wait_all_empty(probes, queue, deadline)
        worker_cpu, broker_cpu = workers.stop(), brokers.stop()
        time.sleep(1.5)  # the workers' hop counters flush twice a second
        hops, per_node = _read_hops(hops_dir)
        names = {x.host_port: k for x, k in zip((a, b, c), "ABC")}
        per_node = {names.get(k, k): v for k, v in per_node.items()}
        r = DrainResult(
            mode=mode, n=n, link_prefetch=link_prefetch if mode != "single" else None, publish_rate=publish_rate,
            drain_s=t_end - t_start, drain_rate=timed / (t_end - t_start), deliveries=sum(hops.values()),
            hops={str(k): v for k, v in sorted(hops.items(), key=lambda kv: int(kv[0]))}, per_node=per_node,
            worker_cpu_s=worker_cpu, brokers_cpu_s=broker_cpu, load=load,
        )
        log(f"{mode} n={n} link prefetch {link_prefetch}: drained at {r.drain_rate:,.0f}/s, hops {r.hops}, per node {per_node} (load {load})")
        return r
    finally:
        for p in procs:
            stop(p, timeout=40)
        try:
            teardown(amqp, mgmt, topo)
        except Exception as exc:  # noqa: BLE001 - the nodes are killed at the end anyway
            log(f"teardown: {exc}")
        for p in probes:
            p.delete(queue, topo.dead_letter("bench"))
            p.close()


def _wait_all_empty(probes: list[DepthProbe], queue: str, deadline: float) -> float:
    first_zero = None
    zeros = 0
    while time.monotonic() < deadline:
        total = sum(p.depth(queue) for p in probes)
        now = time.monotonic()
        if total == 0:
            first_zero = first_zero or now
            zeros += 1
            if zeros >= 3:
                return first_zero
        else:
            first_zero, zeros = None, 0
        time.sleep(0.02)
    raise TimeoutError(f"{queue} not drained in time")


def table(results: list[DrainResult]) -> Table:
    singles = {r.n: r for r in results if r.mode == "single"}
    rows = []
    for r in results:
        base = singles.get(r.n)
        ratio = f"{100 * r.drain_rate / base.drain_rate:.0f} %" if base and r.mode != "single" else "—"
        share = r.multi_hop_share
        rows.append([
            r.mode, f"{r.n:,}", str(r.link_prefetch) if r.link_prefetch is not None else "—", fmt(r.publish_rate), fmt(r.drain_s, 1),
            fmt(r.drain_rate), ratio, "—" if share is None or r.mode == "single" else f"{100 * share:.1f} %",
            " ".join(f"{k}:{v}" for k, v in r.hops.items()), " ".join(f"{k}:{v}" for k, v in sorted(r.per_node.items())),
            f"{r.deliveries - r.n:+d}", fmt(r.worker_cpu_s, 1), fmt(r.brokers_cpu_s, 1), r.load,
        ])
    return Table(
        ["workers on", "backlog", "link prefetch", "publish/s (to A)", "drain s (last 90 %)", "drain msg/s", "vs single node", "multi-hop share",
         "hops: count", "consumed from", "extra deliveries", "worker CPU s", "3 brokers CPU s", "load 1/5/15"],
        rows, "Backlog on node A drained by `eventpipe worker --threads 8`: single = 2 processes --node A; federated = 2 processes "
        "--node B --node C; federated-split = 1 process --node B + 1 process --node C",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks federation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000", help="backlog sizes for the link-prefetch sweep (comma list)")
    ap.add_argument("--prefetches", default="1,10,100,1000", help="federation link prefetch values")
    ap.add_argument("--big", type=int, default=100_000, help="one more backlog of this size at the default link prefetch (0: skip)")
    ap.add_argument("--split", default="", help="link prefetches for an extra federated-split row at the first size "
                    "(one worker process on B, one on C: separates eventpipe's multi-node polling from the mesh)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from benchmarks.tasks import install_sigterm
    from eventpipe.queues.federation import DEFAULT_LINK_PREFETCH
    from eventpipe.testing.rabbitmq import RabbitCluster

    install_sigterm()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    prefetches = [int(p) for p in args.prefetches.split(",") if p.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="eventpipe-fbench-"))
    results: list[DrainResult] = []
    failed = False
    log(f"starting 3 RabbitMQ nodes; load {loadavg()}")
    with RabbitCluster.start_new(3) as cluster:
        log(f"nodes up in {[round(s or 0, 1) for s in cluster.start_seconds]} s: {[n.host_port for n in cluster.nodes]}")
        plan = [(n, "single", DEFAULT_LINK_PREFETCH) for n in sizes] + [(n, "federated", p) for n in sizes for p in prefetches]
        plan += [(sizes[0], "federated-split", int(p)) for p in args.split.split(",") if p.strip()]
        if args.big:
            plan += [(args.big, "single", DEFAULT_LINK_PREFETCH), (args.big, "federated", DEFAULT_LINK_PREFETCH)]
        for n, mode, p in plan:
            try:
                results.append(run_drain(cluster, workdir, n, mode, p))
            except Exception as exc:  # noqa: BLE001
                failed = True
                log(f"{mode} n={n} prefetch {p} FAILED: {type(exc).__name__}: {exc}")
    if failed:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nmachine: {os.cpu_count()} cores, load at end {loadavg()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(table(results).markdown())
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"multi_hop_share": r.multi_hop_share} for r in results], indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
