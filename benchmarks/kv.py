"""Key-value store benchmark: every backend side by side with its raw client, in one run.

    .venv/bin/python -m benchmarks.kv                       # all backends, 10,000 bodies, writes docs/benchmarks-kv.md
    .venv/bin/python -m benchmarks.kv --backends sqlite,file --n 2000 --no-write

For each backend and each access pattern the same bodies (1-10 KiB, JSON-like) are put and then
read back three ways: the **raw client** doing the same statements/requests by hand, the
**adapter** (``open_raw_store``: what eventpipe adds around the client: key checks, TTL
handling, error mapping, pooling), and **adapter+codec** (``open_store``: plus zstd and CRC32,
what the pipeline actually uses). Overhead is the adapter's extra time per operation relative to
the raw client: ``raw_rate / adapter_rate - 1``. Every variant writes its own key range so reads
find what that variant wrote. Rates are the best of ``--repeat`` runs, because this machine is
shared and a single run can be disturbed.

Servers: SeaweedFS and a six-node Redis Cluster are started here (loopback, temp folder, killed
at the end); Postgres and Redis are the machine's (127.0.0.1:5432 db ``test``, 127.0.0.1:6379),
used with a random table name / key prefix that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventpipe.kvstore import open_raw_store, open_store
from eventpipe.testing.servers import RedisClusterServers, SeaweedFS

CODEC_SECTION = "## Codec: zstd level, dictionary, raw threshold"  # kept when this report is rewritten

PG_URL = os.environ.get("EVENTPIPE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EVENTPIPE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BATCH = 100
S3_WORKERS = 16
ALL = ["file", "sqlite", "postgres", "redis", "redis-cluster", "s3"]


# -- bodies ---------------------------------------------------------------------------------------
def make_bodies(n: int, seed: int = 7) -> list[bytes]:
    """Event-like JSON of 1-10 KiB: repeated structure with random ids, so zstd has work to do."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        size = rnd.randint(1024, 10 * 1024)
        frames = []
        while sum(len(f) for f in frames) < size:
            frames.append(
                f'{{"function": "handler_{rnd.randint(0, 999)}", "module": "app.views.{rnd.choice("abcdef")}", '
                f'"lineno": {rnd.randint(1, 5000)}, "id": "{rnd.getrandbits(64):016x}"}},'
            )
        body = (f'{{"event_id": "{i:032x}", "frames": [' + "".join(frames))[: size - 2] + "]}"
        out.append(body.encode())
    return out


# -- one backend = how to do each operation raw and through the adapter ---------------------------------
Op = Callable[[list[str], list[bytes]], None]


@dataclass
class Variant:
    """put/get callables for one client; ``batch`` decides whether they receive 1 or BATCH keys."""

    put: Op
    get: Op
    close: Callable[[], None] = lambda: None


@dataclass
class Backend:
    name: str
    url: str
    raw_label: str
    make_raw: Callable[[str], Variant]  # mode -> variant
    modes: list[str] = field(default_factory=lambda: ["single", "batch"])
    cleanup: Callable[[], None] = lambda: None


def adapter_variant(url: str, codec: bool) -> Variant:
    store: Any = open_store(url) if codec else open_raw_store(url)

    def put(keys: list[str], values: list[bytes]) -> None:
        if len(keys) == 1:
            store.put(keys[0], values[0])
        else:
            store.put_many(dict(zip(keys, values, strict=True)))

    def get(keys: list[str], _values: list[bytes]) -> None:
        if len(keys) == 1:
            if store.get(keys[0]) is None:
                raise AssertionError(f"{keys[0]} missing")
        elif len(store.get_many(keys)) != len(keys):
            raise AssertionError("batch read incomplete")

    return Variant(put, get, store.close)


def raw_file(root: Path) -> Callable[[str], Variant]:
    def make(mode: str) -> Variant:
        made: set[Path] = set()

        def put(keys: list[str], values: list[bytes]) -> None:
            for k, v in zip(keys, values, strict=True):
                path = root / k
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                # atomic, as any writer whose readers run concurrently must be: temp file + rename
                tmp = path.parent / f".{path.name}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(v)
                os.replace(tmp, path)

        def get(keys: list[str], _v: list[bytes]) -> None:
            for k in keys:
                with open(root / k, "rb") as fh:
                    fh.read()

        return Variant(put, get)

    return make


def raw_sqlite(path: Path) -> Callable[[str], Variant]:
    def make(mode: str) -> Variant:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)")

        def put(keys: list[str], values: list[bytes]) -> None:
            if len(keys) == 1:
                conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (keys[0], values[0]))
                return
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", zip(keys, values, strict=True))
            conn.execute("COMMIT")

        def get(keys: list[str], _v: list[bytes]) -> None:
            if len(keys) == 1:
                assert conn.execute("SELECT value FROM kv WHERE key = ?", (keys[0],)).fetchone() is not None
                return
            marks = ",".join("?" * len(keys))
            got = dict(conn.execute(f"SELECT key, value FROM kv WHERE key IN ({marks})", keys).fetchall())
            assert len(got) == len(keys)

        return Variant(put, get, conn.close)

    return make


def raw_postgres(table: str) -> Callable[[str], Variant]:
    import psycopg

    def make(mode: str) -> Variant:
        conn = psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key text PRIMARY KEY, value bytea NOT NULL)")
        upsert = (f"INSERT INTO {table} (key, value) VALUES (%s, %s) "
                  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        upsert_many = (f"INSERT INTO {table} (key, value) SELECT * FROM unnest(%s::text[], %s::bytea[]) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")

        def put(keys: list[str], values: list[bytes]) -> None:
            if len(keys) == 1:
                conn.execute(upsert, (keys[0], values[0]))
            else:
                conn.execute(upsert_many, (keys, values))

        def get(keys: list[str], _v: list[bytes]) -> None:
            if len(keys) == 1:
                assert conn.execute(f"SELECT value FROM {table} WHERE key = %s", (keys[0],)).fetchone()
            else:
                got = dict(conn.execute(f"SELECT key, value FROM {table} WHERE key = ANY(%s)", (keys,)).fetchall())
                assert len(got) == len(keys)

        def close() -> None:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.close()

        return Variant(put, get, close)

    return make


def raw_redis(make_client: Callable[[], Any], cluster: bool) -> Callable[[str], Variant]:
    def make(mode: str) -> Variant:
        client = make_client()

        def put(keys: list[str], values: list[bytes]) -> None:
            if len(keys) == 1:
                client.set(keys[0], values[0])
                return
            pipe = client.pipeline(transaction=False)
            for k, v in zip(keys, values, strict=True):
                pipe.set(k, v)
            pipe.execute()

        def get(keys: list[str], _v: list[bytes]) -> None:
            if len(keys) == 1:
                assert client.get(keys[0]) is not None
            else:
                values = client.mget_nonatomic(keys) if cluster else client.mget(keys)
                got = {k: v for k, v in zip(keys, values, strict=True) if v is not None}
                assert len(got) == len(keys)

        return Variant(put, get, client.close)

    return make


def raw_s3(endpoint: str, access: str, secret: str, bucket: str, client: str) -> Callable[[str], Variant]:
    def make(mode: str) -> Variant:
        import boto3
        from botocore.config import Config

        pool = ThreadPoolExecutor(S3_WORKERS)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access,
                          aws_secret_access_key=secret, config=Config(max_pool_connections=S3_WORKERS + 4))
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        if client == "boto3":

            def put_one(kv: tuple[str, bytes]) -> None:
                s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1])

            def get_one(k: str) -> bytes:
                return bytes(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
        else:
            import obstore
            from obstore.store import S3Store

            st = S3Store(bucket, endpoint=endpoint, region="us-east-1", access_key_id=access,
                         secret_access_key=secret, client_options={"allow_http": True})

            def put_one(kv: tuple[str, bytes]) -> None:
                obstore.put(st, kv[0], kv[1])

            def get_one(k: str) -> bytes:
                return bytes(obstore.get(st, k).bytes())

        def put(keys: list[str], values: list[bytes]) -> None:
            list(pool.map(put_one, zip(keys, values, strict=True)))

        def get(keys: list[str], _v: list[bytes]) -> None:
            got = dict(zip(keys, pool.map(get_one, keys), strict=True))
            assert len(got) == len(keys)

        return Variant(put, get, lambda: pool.shutdown())

    return make


# -- measuring ------------------------------------------------------------------------------------
def run_variant(variant: Variant, keys: list[str], bodies: list[bytes], mode: str) -> list[float]:
    """[put ops/s, get ops/s, put CPU us/op, get CPU us/op] for one pass over all keys.

    CPU time is this process's (all threads): the part the adapter can add to, and far less
    disturbed by other processes on a shared machine than wall time.
    """
    step = 1 if mode == "single" else BATCH
    chunks = [(keys[i:i + step], bodies[i:i + step]) for i in range(0, len(keys), step)]
    c0, t0 = time.process_time(), time.perf_counter()
    for k, v in chunks:
        variant.put(k, v)
    c1, t1 = time.process_time(), time.perf_counter()
    for k, v in chunks:
        variant.get(k, v)
    c2, t2 = time.process_time(), time.perf_counter()
    n = len(keys)
    return [n / (t1 - t0), n / (t2 - t1), (c1 - c0) / n * 1e6, (c2 - c1) / n * 1e6]


def run_threads(make: Callable[[], Variant], keys: list[str], bodies: list[bytes], threads: int) -> tuple[float, float]:
    """Single-key puts then gets from ``threads`` threads sharing one store (how workers use it)."""
    variant = make()
    parts = [list(range(i, len(keys), threads)) for i in range(threads)]

    def phase(fn: Op) -> float:
        def work(idx: list[int]) -> None:
            for i in idx:
                fn([keys[i]], [bodies[i]])

        ts = [threading.Thread(target=work, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return len(keys) / (time.perf_counter() - t0)

    put_rate = phase(variant.put)
    get_rate = phase(variant.get)
    variant.close()
    return put_rate, get_rate


@dataclass
class Row:
    backend: str
    mode: str
    client: str
    put: float
    get: float
    put_cpu_us: float = 0.0
    get_cpu_us: float = 0.0


def measure(backend: Backend, bodies: list[bytes], repeat: int, log: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    n = len(bodies)
    for mode in backend.modes:
        best: dict[str, list[float]] = {}
        for rep in range(repeat):
            # interleaved, so a disturbance hits all three clients alike
            for label, make in (
                (backend.raw_label, lambda: backend.make_raw(mode)),
                ("adapter", lambda: adapter_variant(backend.url, codec=False)),
                ("adapter+codec", lambda: adapter_variant(backend.url, codec=True)),
            ):
                tag = {"adapter": "a", "adapter+codec": "c"}.get(label, "r")
                keys = [f"bench{tag}{rep}/{i:032x}" for i in range(n)]
                variant = make()
                try:
                    got = run_variant(variant, keys, bodies, mode)
                finally:
                    variant.close()
                prev = best.setdefault(label, [0.0, 0.0, float("inf"), float("inf")])
                best[label] = [max(prev[0], got[0]), max(prev[1], got[1]), min(prev[2], got[2]), min(prev[3], got[3])]
        for label, (put, get, put_cpu, get_cpu) in best.items():
            rows.append(Row(backend.name, mode, label, put, get, put_cpu, get_cpu))
            log(f"  {backend.name:14s} {mode:6s} {label:16s} put {put:9.0f}/s ({put_cpu:6.1f} us CPU)"
                f"  get {get:9.0f}/s ({get_cpu:6.1f} us CPU)")
    return rows


def overhead(raw: float, adapter: float) -> float:
    return (raw / adapter - 1.0) * 100.0


# -- servers and backends -------------------------------------------------------------------------
@contextmanager
def backends_for(names: list[str], tmp: Path, log: Callable[[str], None]) -> Iterator[list[Backend]]:
    out: list[Backend] = []
    with ExitStack() as stack:
        if "file" in names:
            root = tmp / "files"
            out.append(Backend("file", f"file://{tmp / 'kv-adapter'}", "plain files", raw_file(root)))
        if "sqlite" in names:
            out.append(Backend("sqlite", f"sqlite://{tmp / 'kv-adapter.sqlite3'}", "raw sqlite3",
                               raw_sqlite(tmp / "raw.sqlite3")))
        if "postgres" in names:
            table = f"bench_kv_{uuid.uuid4().hex[:8]}"
            url = f"{PG_URL}?table={table}_a"

            def drop(url: str = url) -> None:
                store: Any = open_raw_store(url)
                store.drop_table()
                store.close()

            out.append(Backend("postgres", url, "raw psycopg", raw_postgres(table + "_r"), cleanup=drop))
        if "redis" in names:
            import redis

            prefix = f"bench-{uuid.uuid4().hex[:8]}:"

            def clean_redis(prefix: str = prefix) -> None:
                client = redis.Redis.from_url(REDIS_URL)
                keys = list(client.scan_iter(match=prefix + "*", count=5000))
                for j in range(0, len(keys), 1000):
                    client.unlink(*keys[j:j + 1000])
                client.close()

            raw_prefix_client = lambda: redis.Redis.from_url(REDIS_URL)  # noqa: E731
            backend = Backend("redis", f"{REDIS_URL}?prefix={prefix}", "raw redis-py",
                              raw_redis(raw_prefix_client, cluster=False), cleanup=clean_redis)
            out.append(backend)
            # raw keys carry the same prefix so cleanup finds them
            backend.make_raw = _prefixed(backend.make_raw, prefix)
        if "redis-cluster" in names:
            from redis.cluster import ClusterNode, RedisCluster

            log("starting a six-node Redis Cluster...")
            cluster = stack.enter_context(RedisClusterServers(tmp / "redis-cluster"))
            nodes = [ClusterNode("127.0.0.1", n.port) for n in cluster.nodes]
            out.append(Backend("redis-cluster", cluster.url, "raw RedisCluster",
                               raw_redis(lambda: RedisCluster(startup_nodes=nodes), cluster=True)))
        if "s3" in names:
            log("starting SeaweedFS...")
            weed = stack.enter_context(SeaweedFS(tmp / "seaweedfs"))
            for client in ("boto3", "obstore"):
                out.append(Backend(
                    f"s3 ({client})", weed.url(f"bench-{client}-a", client=client, workers=str(S3_WORKERS)),
                    f"raw {client}",
                    raw_s3(weed.endpoint, weed.access_key, weed.secret_key, f"bench-{client}-r", client),
                    modes=["batch"],
                ))
        try:
            yield out
        finally:
            for b in out:
                try:
                    b.cleanup()
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide results
                    log(f"cleanup of {b.name} failed: {exc}")


def _prefixed(make: Callable[[str], Variant], prefix: str) -> Callable[[str], Variant]:
    def wrapped(mode: str) -> Variant:
        inner = make(mode)
        return Variant(lambda k, v: inner.put([prefix + x for x in k], v),
                       lambda k, v: inner.get([prefix + x for x in k], v), inner.close)

    return wrapped


# -- report ---------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def render(rows: list[Row], extra: list[Row], n: int, repeat: int, seconds: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Key-value store benchmark",
        "",
        f"`python -m benchmarks.kv` on {when}; machine: {machine()}. "
        f"{n:,} bodies of 1-10 KiB (event-like JSON), best of {repeat} interleaved runs, total {seconds:.0f} s. "
        "The machine is shared with other test runs: compare figures within this table, not across runs (±30%).",
        "",
        "- **single**: one key per call, one thread. **batch**: "
        f"{BATCH} keys per `put_many`/`get_many` (S3: a bounded pool of {S3_WORKERS} threads per batch).",
        "- **raw**: the client library doing the same statements/requests by hand (batch reads build the same "
        "key->value dict; plain files are written atomically, temp file + rename, as the adapter does). **adapter**: "
        "`open_raw_store(url)`. **adapter+codec**: `open_store(url)` (zstd + CRC32), what the pipeline uses.",
        "- **overhead (wall)** = extra time per operation of the adapter over the raw client, "
        "`raw ops/s / adapter ops/s - 1`; **overhead (CPU)** = the same on this process's CPU time per "
        "operation (all threads), which other processes on the machine disturb much less. Target ≤ 10 %. "
        "Negative means the adapter was faster (noise, or a better batching strategy).",
        "",
        "| backend | mode | op | raw client | raw ops/s | adapter ops/s | +codec ops/s | overhead (wall) "
        "| raw CPU us/op | adapter CPU us/op | overhead (CPU) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        by.setdefault((r.backend, r.mode), {})[r.client] = r
    for (backend, mode), group in by.items():
        raw = next(r for c, r in group.items() if c not in ("adapter", "adapter+codec"))
        a, c = group["adapter"], group["adapter+codec"]
        for op in ("put", "get"):
            rr, ar, cr = getattr(raw, op), getattr(a, op), getattr(c, op)
            rc, ac = getattr(raw, op + "_cpu_us"), getattr(a, op + "_cpu_us")
            lines.append(
                f"| {backend} | {mode} | {op} | {raw.client} | {rr:,.0f} | {ar:,.0f} | {cr:,.0f} "
                f"| {overhead(rr, ar):+.0f} % | {rc:.1f} | {ac:.1f} | {(ac / rc - 1) * 100:+.0f} % |"
            )
    if extra:
        lines += ["", "## Embedded default: SQLite vs filesystem, 8 threads sharing one store (adapter+codec)", "",
                  "| backend | put/s | get/s |", "|---|---:|---:|"]
        for r in extra:
            lines.append(f"| {r.backend} | {r.put:,.0f} | {r.get:,.0f} |")
    s3 = {r.backend: r for r in rows if r.backend.startswith("s3") and r.client == "adapter"}
    if len(s3) == 2:
        b, o = s3["s3 (boto3)"], s3["s3 (obstore)"]
        lines += ["", "## S3 client: obstore vs boto3 (same SeaweedFS, same run, adapter)", "",
                  f"obstore put {o.put:,.0f}/s vs boto3 {b.put:,.0f}/s ({o.put / b.put:.1f}x); "
                  f"get {o.get:,.0f}/s vs {b.get:,.0f}/s ({o.get / b.get:.1f}x). "
                  "obstore is the default S3 client for get/put; boto3 keeps bucket creation, HEAD, listing "
                  "and DeleteObjects (`client=boto3` in the URL switches get/put back)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(ALL), help=f"comma list from {ALL}")
    parser.add_argument("--n", type=int, default=10_000, help="bodies per run (default 10,000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant; the best is kept")
    parser.add_argument("--threads", type=int, default=8, help="threads for the sqlite-vs-file comparison")
    parser.add_argument("--out", default="docs/benchmarks-kv.md")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write --out")
    parser.add_argument("--json", action="store_true", help="print rows as JSON on stdout")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(names) - set(ALL)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; choose from {ALL}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # SIGTERM (kill, CI timeouts) must unwind like Ctrl-C so the servers started here are stopped
    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    bodies = make_bodies(args.n)
    log(f"{args.n} bodies, {sum(map(len, bodies)) / len(bodies) / 1024:.1f} KiB on average; {machine()}")
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="eventpipe-bench-kv-"))
    rows: list[Row] = []
    extra: list[Row] = []
    failures: list[str] = []
    try:
        with backends_for(names, tmp, log) as backends:
            for backend in backends:
                log(f"{backend.name}: {backend.raw_label} vs adapter")
                try:
                    rows += measure(backend, bodies, args.repeat, log)
                except Exception as exc:  # noqa: BLE001 - one failing backend must not lose the others
                    failures.append(f"{backend.name}: {type(exc).__name__}: {str(exc)[:300]}")
                    log(f"  FAILED: {failures[-1]}")
            if "sqlite" in names and "file" in names:
                log(f"sqlite vs file, {args.threads} threads, adapter+codec")
                for name, url in (("sqlite", f"sqlite://{tmp / 'threads.sqlite3'}"), ("file", f"file://{tmp / 'threads'}")):
                    keys = [f"t/{i:032x}" for i in range(args.n)]
                    put, get = run_threads(lambda url=url: adapter_variant(url, codec=True), keys, bodies, args.threads)
                    extra.append(Row(name, "threads", "adapter+codec", put, get))
                    log(f"  {name:8s} put {put:8.0f}/s get {get:8.0f}/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = render(rows, extra, args.n, args.repeat, time.monotonic() - started)
    if failures:
        report += "\n## Failed during this run\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    print(json.dumps([r.__dict__ for r in rows + extra], indent=2) if args.json else report)
    if not args.no_write:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        out = Path(args.out)
        previous = out.read_text() if out.exists() else ""
        if CODEC_SECTION in previous:  # written by `python -m benchmarks.codec`'s measurement: keep it
            report += "\n" + previous[previous.index(CODEC_SECTION):]
        out.write_text(report)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
