"""`python -m benchmarks {pipeline,tasks,federation,kv,all} [options]` — see docs/benchmarks.md.

    pipeline     every hot-path figure beside its baseline in one run: no-op and batch no-op tasks,
                 the event pipeline on eventpipe / Celery (2017 wiring) / the hand-written limit,
                 HTTP ingest, steady-rate latency, ~50 KB events (embedded and RabbitMQ); worker memory
    tasks        no-op tasks: raw pika, plain Dramatiq, Celery, eventpipe; then the event pipeline
    federation   drain a backlog through three test-owned RabbitMQ nodes vs one node
    kv           key-value store backends (benchmarks/kv.py)
    all          pipeline, federation and kv in turn (each with its defaults); exits non-zero if any failed
"""

from __future__ import annotations

import subprocess
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "pipeline":
        from benchmarks.pipeline import main as run

        return run(rest)
    if cmd == "tasks":
        from benchmarks.tasks import main as run

        return run(rest)
    if cmd == "federation":
        from benchmarks.federation import main as run

        return run(rest)
    if cmd == "kv":
        return subprocess.call([sys.executable, "-m", "benchmarks.kv", *rest])
    if cmd == "all":
        worst = 0
        for sub in ("pipeline", "federation", "kv"):
            print(f"\n===== benchmarks {sub} =====\n", flush=True)
            code = subprocess.call([sys.executable, "-m", "benchmarks", sub])
            worst = worst or code
        return worst
    print(f"unknown benchmark {cmd!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
