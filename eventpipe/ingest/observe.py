"""What operators see of ingest: every rejected request logged once (project, reason, client
address; rate-limited, so a flood costs a few lines a second and a count of what was suppressed)
and Prometheus counters of rejections by reason and of envelope items by type and outcome."""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Counter

log = logging.getLogger("eventpipe.ingest")

REJECTED = Counter("eventpipe_ingest_rejected", "Ingest requests answered 4xx, by reason", ("reason", "status"))
BODIES = Counter("eventpipe_ingest_bodies", "Request bodies read, by Content-Encoding", ("encoding",))
ITEMS = Counter("eventpipe_ingest_items", "Items received by the ingest endpoint, by type and outcome", ("type", "outcome"))


class RejectionLog:
    """At most ``burst`` lines, refilled at ``per_second``; suppressed lines are counted and the
    count is reported by the next line that gets through."""

    def __init__(self, per_second: float = 5.0, burst: float = 20.0) -> None:
        self.per_second = per_second
        self.burst = burst
        self.tokens = burst
        self.last = time.monotonic()
        self.suppressed = 0
        self.lock = threading.Lock()

    def rejected(self, *, status: int, reason: str, project_id: int | None, client: str | None, detail: str) -> None:
        REJECTED.labels(reason=reason, status=str(status)).inc()
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_second)
            self.last = now
            if self.tokens < 1:
                self.suppressed += 1
                return
            self.tokens -= 1
            suppressed, self.suppressed = self.suppressed, 0
        more = f" ({suppressed} more rejections not logged)" if suppressed else ""
        log.warning(
            "rejected %d %s project=%s client=%s: %s%s", status, reason, project_id, client or "?", detail[:300], more
        )


def count_items(kind: str, outcome: str, n: int = 1) -> None:
    if n:
        ITEMS.labels(type=kind, outcome=outcome).inc(n)
