"""HTTP ingest traffic at a fixed rate from concurrent clients, and what became of each event.

Every event carries its own ``event_id``, so "stored" is an exact SQL question (its row in
``events``), and lost = accepted but never stored. Clients do not retry: each answer is counted
as it came (a 503 with ``Retry-After`` is the correct back-pressure, everything else is an error
a client should not see).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

REQUEST_TIMEOUT_S = 15.0


@dataclass
class Sent:
    event_id: str
    at: float  # monotonic, when the answer came
    status: int | str  # HTTP status, or "timeout" / "refused" / "error"
    retry_after: bool = False
    latency: float = 0.0  # seconds from sending to the answer


@dataclass
class Traffic:
    """Runs ``clients`` threads posting ``rate`` events/s in total until :meth:`stop`."""

    url: str
    project_id: int
    key: str
    rate: float = 60.0
    clients: int = 6
    tag: str = "chaos"
    body: Any = None  # callable(i) -> (bytes, headers) for fuzzing; default: a valid event
    results: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]

    def start(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(REQUEST_TIMEOUT_S + 5)

    def _client(self, n: int) -> None:
        period = self.clients / self.rate
        headers = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={self.key}, sentry_client=chaos/1",
                   "Content-Type": "application/json"}
        rnd = random.Random(n)
        i = 0
        next_at = time.monotonic() + rnd.random() * period
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_at += period
                i += 1
                event_id = uuid.uuid4().hex
                if self.body is not None:
                    content, extra = self.body(rnd, event_id)
                else:
                    content = (b'{"event_id":"%s","message":"%s failure %d","level":"error","platform":"python"}'
                               % (event_id.encode(), self.tag.encode(), i % 7))
                    extra = {}
                sent_at = time.monotonic()
                try:
                    r = http.post(f"{self.url}/api/{self.project_id}/store/", content=content, headers={**headers, **extra})
                    sent = Sent(event_id, time.monotonic(), r.status_code, "retry-after" in r.headers)
                except httpx.TimeoutException:
                    sent = Sent(event_id, time.monotonic(), "timeout")
                except httpx.ConnectError:
                    sent = Sent(event_id, time.monotonic(), "refused")
                except httpx.HTTPError as exc:
                    sent = Sent(event_id, time.monotonic(), f"error:{type(exc).__name__}")
                sent.latency = sent.at - sent_at
                with self._lock:
                    self.results.append(sent)

    # ---------------------------------------------------------------------------------------
    def accepted(self) -> list[Sent]:
        return [s for s in self.results if s.status == 200]

    def slow(self, over_s: float = 5.0) -> tuple[float, int]:
        """(slowest answer in seconds, answers slower than ``over_s``): a client waiting that long
        is a near-hang even when the answer is a 200."""
        lat = [s.latency for s in self.results]
        return (max(lat) if lat else 0.0), sum(1 for x in lat if x > over_s)

    def client_errors(self) -> tuple[int, int, Counter[str]]:
        """(503/429 with Retry-After, bad answers, bad answers by kind). 4xx other than 429 are
        counted bad here: valid traffic should never get one (R9 counts its fuzz separately)."""
        ok_backpressure = 0
        bad: Counter[str] = Counter()
        for s in self.results:
            if s.status == 200:
                continue
            if s.status in (503, 429) and s.retry_after:
                ok_backpressure += 1
            else:
                bad[str(s.status)] += 1
        return ok_backpressure, sum(bad.values()), bad


def stored_ids(engine: sa.Engine, project_id: int, ids: list[str]) -> Counter[str]:
    """event_id -> number of rows in ``events`` (more than 1 would be a duplicate effect)."""
    found: Counter[str] = Counter()
    with engine.connect() as conn:
        for i in range(0, len(ids), 2000):
            chunk = ids[i:i + 2000]
            rows = conn.execute(
                sa.text("SELECT event_id, count(*) FROM events WHERE project_id = :p AND event_id = ANY(:ids) "
                        "GROUP BY event_id"),
                {"p": project_id, "ids": chunk},
            )
            for event_id, n in rows:
                found[event_id] = int(n)
    return found


def counter_excess(engine: sa.Engine, project_id: int) -> int | None:
    """Counter increments (``times_seen`` plus pending buffered deltas) beyond one per stored
    event of the project: a positive number means some event was counted twice. None when the
    schema does not have these tables (the pipeline changed)."""
    try:
        with engine.connect() as conn:
            seen = conn.execute(sa.text("SELECT coalesce(sum(times_seen), 0) FROM issues WHERE project_id = :p"),
                                {"p": project_id}).scalar_one()
            pending = conn.execute(sa.text(
                "SELECT coalesce(sum(b.delta), 0) FROM buffered_counters b JOIN issues i ON i.id = b.issue_id "
                "WHERE i.project_id = :p"), {"p": project_id}).scalar_one()
            events = conn.execute(sa.text("SELECT count(*) FROM events WHERE project_id = :p"),
                                  {"p": project_id}).scalar_one()
    except sa.exc.SQLAlchemyError:
        return None
    return int(seen) + int(pending) - int(events)


def wait_stored(engine: sa.Engine, project_id: int, ids: list[str], timeout_s: float) -> Counter[str]:
    """Poll until every id is stored or ``timeout_s`` passes; the last count either way."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = stored_ids(engine, project_id, ids)
        except sa.exc.OperationalError:
            found = Counter()  # database restarting
        if len(found) >= len(set(ids)) or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def first_flow_after(traffic: Traffic, engine: sa.Engine, project_id: int, since: float, timeout_s: float) -> float | None:
    """Seconds from ``since`` until an event accepted after it is stored: the pipeline flows again
    end to end (ingest accepts and workers store). None if that did not happen in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = [s.event_id for s in list(traffic.results) if s.status == 200 and s.at >= since][:50]
        if fresh:
            try:
                if stored_ids(engine, project_id, fresh):
                    return time.monotonic() - since
            except sa.exc.OperationalError:
                pass
        time.sleep(0.5)
    return None


__all__ = ["Sent", "Traffic", "counter_excess", "first_flow_after", "stored_ids", "wait_stored"]
