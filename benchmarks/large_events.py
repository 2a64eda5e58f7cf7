"""Where the CPU goes for SDK-sized (~50 KB) events, stage by stage, without brokers or stores.

    .venv/bin/python -m benchmarks.large_events                     # 500 events, table per stage
    .venv/bin/python -m benchmarks.large_events --before a3e5e28    # plus scrub from that commit
    .venv/bin/python -m benchmarks.large_events --profile           # plus the top functions (cProfile)

Stages are what one event costs in ``events.process`` and around it: parse the raw body, normalize,
trim, scrub, serialize, codec encode (put) and decode (get). CPU per event is
``time.process_time`` over the whole batch, best of ``--repeat`` passes, so other processes on a
shared machine disturb it little. ``--before REV`` also times ``eventpipe/pipeline/scrub.py`` as
it was at git revision REV and zstd level 3 (the codec's level before measurement chose 1).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import time
import types
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import zstandard

from eventpipe.kvstore.codec import decode, encode
from eventpipe.pipeline.demo import generate
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import scrub_event
from eventpipe.pipeline.trim import trim_event

NOW = 1_760_000_000.0


def cpu_per_item(fn: Callable[[Any], object], items: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - start) / len(items))
    return best * 1e6


def module_at(rev: str, path: str, name: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(name)
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.large_events")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", metavar="REV", help="also time scrub.py at this git revision and zstd level 3")
    parser.add_argument("--profile", action="store_true", help="print the top functions of one pass (cProfile)")
    args = parser.parse_args(argv)

    raw = [orjson.dumps(e.payload) for e in generate(args.n, 1, now=NOW, large=True)]
    parsed = [orjson.loads(b) for b in raw]
    normalized = [normalize_event(p, project_id=1, received=NOW) for p in parsed]
    trimmed = [trim_event(e) for e in normalized]
    scrubbed = [scrub_event(e) for e in trimmed]
    bodies = [orjson.dumps(e) for e in scrubbed]
    frames = [encode(b) for b in bodies]
    stages: list[tuple[str, Callable[[Any], object], list[Any]]] = [
        ("parse raw body (orjson)", orjson.loads, raw),
        ("normalize", lambda p: normalize_event(p, project_id=1, received=NOW), parsed),
        ("trim", trim_event, normalized),
        ("scrub", scrub_event, trimmed),
        ("serialize (orjson)", orjson.dumps, scrubbed),
        ("codec encode (put)", encode, bodies),
        ("codec decode (get)", lambda f: decode("k", f), frames),
    ]
    if args.before:
        old = module_at(args.before, "eventpipe/pipeline/scrub.py", "scrub_before")
        level3 = zstandard.ZstdCompressor(level=3)
        stages.insert(4, (f"scrub as of {args.before}", old.scrub_event, trimmed))
        stages.insert(7, ("codec encode, zstd level 3", lambda b: (zlib.crc32(b), level3.compress(b)), bodies))
    mean_raw = sum(map(len, raw)) / len(raw)
    mean_body = sum(map(len, bodies)) / len(bodies)
    print(f"`python -m benchmarks.large_events {' '.join(argv)}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
          f"{args.n} events, raw {mean_raw:,.0f} B, stored body {mean_body:,.0f} B before the codec, "
          f"{sum(map(len, frames)) / len(frames):,.0f} B after; CPU us per event, best of {args.repeat}.\n")
    print("| stage | CPU us / event |")
    print("|---|---:|")
    for label, fn, items in stages:
        print(f"| {label} | {cpu_per_item(fn, items, args.repeat):,.0f} |")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for p in parsed:
            event = scrub_event(trim_event(normalize_event(p, project_id=1, received=NOW)))
            decode("k", encode(orjson.dumps(event)))
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        print("\n```\n" + out.getvalue().strip() + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
