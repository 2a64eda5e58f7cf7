"""``python -m chaos [--scenarios R2,R1] [--duration 30] [--rate 60] [--out docs/reliability.md]``."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from rich.console import Console

from .report import markdown, print_table
from .scenarios import SCENARIOS, Row, World
from .servers import REPO, Deployment


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)}")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of traffic per scenario")
    ap.add_argument("--rate", type=float, default=60.0, help="valid events per second (all clients together)")
    ap.add_argument("--out", default=str(REPO / "docs" / "reliability.md"), help="markdown report ('' to skip)")
    ap.add_argument("--nodes", type=int, default=3, help="RabbitMQ nodes (R1 needs 3)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs) for a post-mortem")
    args = ap.parse_args(argv)
    chosen = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if "R1" in chosen and args.nodes < 3:
        ap.error("R1 kills one of three nodes: use --nodes 3")

    base = Path(tempfile.mkdtemp(prefix="eventpipe-chaos-"))
    base.chmod(0o755)  # the test Postgres runs as the postgres account when we are root
    dep = Deployment(base, nodes=args.nodes)
    rows: list[Row] = []
    console = Console(width=160)
    t0 = time.monotonic()
    try:
        print(f"starting Postgres and {args.nodes} RabbitMQ node(s) under {base} ...", flush=True)
        dep.start()
        res = dep.cli("federation", "setup", "--json") if args.nodes > 1 else None
        if res is not None and res.returncode != 0:
            print(f"federation setup failed:\n{res.stdout}{res.stderr}", file=sys.stderr)
            return 1
        assert dep.pg is not None
        engine = sa.create_engine(dep.pg.url, pool_pre_ping=True)
        world = World(dep, engine, duration_s=args.duration, rate=args.rate, clients=args.clients)
        for name in chosen:
            print(f"{name}: {SCENARIOS[name].__doc__ or ''}running ...", flush=True)
            try:
                rows.append(SCENARIOS[name](world))
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                rows.append(Row(name, f"scenario failed: {type(exc).__name__}: {exc}"))
            print_table(rows[-1:], console)
    finally:
        dep.close()
        if args.keep:
            print(f"logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print_table(rows, console)
    settings = (f"{args.rate:.0f} events/s from {args.clients} clients for {args.duration:.0f} s per scenario, "
                f"{args.nodes} RabbitMQ node(s), 2 worker processes x 4 threads")
    if args.out:
        Path(args.out).write_text(markdown(rows, repo=REPO, settings=settings))
        print(f"written to {args.out} ({time.monotonic() - t0:.0f} s in all)")
    clean = all(r.lost == 0 and r.dup_rows == 0 and not r.dup_counts and r.bad == 0 and r.accepted > 0 for r in rows)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
