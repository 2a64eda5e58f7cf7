"""Body codec benchmark: zstd level, dictionary and raw threshold, on the bodies the pipeline stores.

    .venv/bin/python -m benchmarks.codec              # prints a Markdown table
    .venv/bin/python -m benchmarks.codec --n 200      # fewer bodies (quicker, noisier)

Bodies: what ``events.process`` writes (the normalized, trimmed, scrubbed event as JSON) for the
demo's small events (about 1-2 KB) and for its large, SDK-sized events (``generate(large=True)``:
about 50 KB on the wire, about 34 KB once normalized), plus the raw 50 KB ingest body. For each
variant: CPU microseconds per encode and per decode (``time.process_time``, best of ``--repeat``
passes, so other processes on a shared machine disturb it little) and the stored size relative to
the input. Variants are plain zstd at levels -1, 1 and 3, and levels 1 and 3 with a dictionary
trained on other events of the same generator (a best case for a dictionary: the same shapes).
A second table gives the ratio by body size, to choose below which size bodies are stored raw.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import zstandard

from eventpipe.kvstore.codec import decode, encode
from eventpipe.pipeline.demo import generate
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.scrub import scrub_event
from eventpipe.pipeline.trim import trim_event

NOW = 1_760_000_000.0


def stored_bodies(n: int, seed: int, *, large: bool) -> list[bytes]:
    out = []
    for demo in generate(n * 2 if not large else n, seed, now=NOW, large=large):
        try:
            event = normalize_event(demo.payload, project_id=demo.project_id, received=NOW)
        except InvalidEvent:
            continue
        out.append(orjson.dumps(scrub_event(trim_event(event))))
    return out[:n]


def cpu_per_item(fn: Callable[[bytes], object], items: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - start) / len(items))
    return best * 1e6


def variants(train: list[bytes]) -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    out: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {}
    for level in (-1, 1, 3):
        c, d = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
        out[f"zstd {level}"] = (c.compress, d.decompress)
    dictionary = zstandard.train_dictionary(64 * 1024, train)
    for level in (1, 3):
        c = zstandard.ZstdCompressor(level=level, dict_data=dictionary)
        d = zstandard.ZstdDecompressor(dict_data=dictionary)
        out[f"zstd {level} + 64 KB dictionary"] = (c.compress, d.decompress)
    out["crc32 only"] = (lambda b: b, lambda b: b)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codec")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sets = {
        "small (normalized)": stored_bodies(args.n, 1, large=False),
        "large (normalized)": stored_bodies(args.n, 1, large=True),
        "large (raw ingest)": [orjson.dumps(e.payload) for e in generate(args.n, 1, now=NOW, large=True)],
    }
    train = stored_bodies(400, 99, large=False) + stored_bodies(100, 99, large=True)
    started = time.time()
    print(f"`python -m benchmarks.codec --n {args.n}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
          f"Python {platform.python_version()}, zstandard {zstandard.__version__}, CPU us per body (best of {args.repeat}).\n")
    print("| bodies | mean size | variant | encode us | decode us | stored / input |")
    print("|---|---:|---|---:|---:|---:|")
    for label, bodies in sets.items():
        mean = sum(map(len, bodies)) / len(bodies)
        for name, (comp, decomp) in variants(train).items():
            packed = [comp(b) for b in bodies]
            enc = cpu_per_item(lambda b: (zlib.crc32(b), comp(b)), bodies, args.repeat)
            dec = cpu_per_item(lambda p: zlib.crc32(decomp(p)), packed, args.repeat)
            ratio = sum(map(len, packed)) / sum(map(len, bodies))
            print(f"| {label} | {mean:,.0f} B | {name} | {enc:.1f} | {dec:.1f} | {ratio:.3f} |")
        enc = cpu_per_item(encode, bodies, args.repeat)
        frames = [encode(b) for b in bodies]
        dec = cpu_per_item(lambda f: decode("k", f), frames, args.repeat)
        ratio = sum(map(len, frames)) / sum(map(len, bodies))
        print(f"| {label} | {mean:,.0f} B | **eventpipe codec as shipped** | {enc:.1f} | {dec:.1f} | {ratio:.3f} |")
    print("\nStored size by input size (zstd 1, no dictionary), prefixes of large normalized bodies:\n")
    print("| input bytes | stored / input | encode us |")
    print("|---:|---:|---:|")
    c1 = zstandard.ZstdCompressor(level=1)
    for size in (128, 256, 512, 1024, 2048, 4096):
        cut = [b[:size] for b in sets["large (normalized)"]]
        ratio = sum(len(c1.compress(b)) for b in cut) / sum(map(len, cut))
        print(f"| {size} | {ratio:.3f} | {cpu_per_item(c1.compress, cut, args.repeat):.1f} |")
    print(f"\n(total {time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
