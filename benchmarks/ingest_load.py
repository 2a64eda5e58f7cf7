"""HTTP load generator for the ingest row: N concurrent clients (asyncio + aiohttp, one keep-alive
connection each) post store events to ``/api/{project}/store/`` until ``--requests`` were sent or
``--seconds`` passed, whichever comes first. Each body is a demo event (the pipeline rows'
generator, malformed ones left out) with a fresh event id, so every request is a new event.
Prints one JSON line: counts by status, wall time, latency percentiles of the 200s, own CPU.

    python -m benchmarks.ingest_load --url http://127.0.0.1:PORT --project 1 --key KEY --clients 32 --requests 20000 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import orjson
import psutil

from benchmarks.common import percentiles


def templates(project_id: int, seed: int, count: int = 500) -> list[dict[str, Any]]:
    """Valid demo events of any project, re-homed to ``project_id`` (ids replaced per request)."""
    from eventpipe.pipeline.demo import generate
    from eventpipe.pipeline.errors import InvalidEvent
    from eventpipe.pipeline.normalize import normalize_event

    out = []
    for ev in generate(count, seed, now=time.time()):
        try:
            normalize_event(ev.payload, project_id=project_id, received=time.time())
        except InvalidEvent:
            continue
        if isinstance(ev.payload, dict):
            out.append(ev.payload)
    return out


async def run(url: str, project_id: int, key: str, clients: int, requests: int, seconds: float, seed: int) -> dict[str, Any]:
    bodies = templates(project_id, seed)
    endpoint = f"{url}/api/{project_id}/store/"
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7", "Content-Type": "application/json"}
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    state = {"next": 0}
    deadline = 0.0

    async def client(session: aiohttp.ClientSession) -> None:
        while state["next"] < requests and time.monotonic() < deadline:
            i = state["next"]
            state["next"] += 1
            body = orjson.dumps({**bodies[i % len(bodies)], "event_id": uuid.uuid4().hex})
            t = time.perf_counter()
            try:
                async with session.post(endpoint, data=body, headers=headers) as resp:
                    await resp.read()
                    status = str(resp.status)
            except aiohttp.ClientError as exc:
                status = type(exc).__name__
            dt = time.perf_counter() - t
            statuses[status] += 1
            if status == "200":
                latencies.append(dt)

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        # one untimed request per client opens the connections
        async with session.post(endpoint, data=orjson.dumps({**bodies[0], "event_id": uuid.uuid4().hex}), headers=headers) as r:
            if r.status != 200:
                raise SystemExit(f"warm-up request answered {r.status}: {(await r.text())[:500]}")
        proc = psutil.Process()
        c0 = sum(proc.cpu_times()[:2])
        t0 = time.time()
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(session) for _ in range(clients)))
        t1 = time.time()
        cpu = sum(proc.cpu_times()[:2]) - c0
    p50, p99, mx = percentiles(latencies)
    return {
        "sent": sum(statuses.values()), "ok": statuses.get("200", 0), "statuses": dict(statuses), "t0": t0, "t1": t1,
        "rps": statuses.get("200", 0) / (t1 - t0), "p50_ms": 1000 * p50, "p99_ms": 1000 * p99, "max_ms": 1000 * mx,
        "cpu_s": cpu, "clients": clients,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--project", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.url, a.project, a.key, a.clients, a.requests, a.seconds, a.seed))), flush=True)


if __name__ == "__main__":
    main()
