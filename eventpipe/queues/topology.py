"""Queue names. Every physical queue carries the deployment's prefix so several deployments or test
runs share one broker; every process derives names the same way, so they declare identically."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DELAY_RE = re.compile(r"^(?P<logical>.+)\.delay\.(?P<ms>\d+)$")


@dataclass(frozen=True)
class QueueKind:
    """What a physical queue is: ``work``, ``dlq``, ``delay`` or ``other`` (not eventpipe's)."""

    kind: str
    logical: str
    delay_ms: int | None = None


@dataclass(frozen=True)
class Topology:
    prefix: str = "eventpipe."

    def queue(self, logical: str) -> str:
        """Work queue for a logical queue name (``events`` -> ``eventpipe.events``)."""
        return self.prefix + logical

    def logical(self, physical: str) -> str:
        return physical[len(self.prefix):] if physical.startswith(self.prefix) else physical

    def dead_letter(self, logical: str) -> str:
        return f"{self.prefix}{logical}.dlq"

    def delay(self, logical: str, delay_ms: int) -> str:
        """Per-delay holding queue: messages sit there (TTL) and dead-letter back to the work queue."""
        return f"{self.prefix}{logical}.delay.{delay_ms}"

    def heartbeat_exchange(self) -> str:
        return f"{self.prefix}heartbeats"

    def owns(self, physical: str) -> bool:
        return physical.startswith(self.prefix)

    def classify(self, physical: str) -> QueueKind:
        """The inverse of the names above. Logical names may contain dots (``events.save``),
        so the suffixes ``.dlq`` and ``.delay.<ms>`` are matched exactly."""
        if not self.owns(physical):
            return QueueKind("other", physical)
        rest = self.logical(physical)
        if rest.endswith(".dlq"):
            return QueueKind("dlq", rest[: -len(".dlq")])
        m = _DELAY_RE.match(rest)
        if m:
            return QueueKind("delay", m.group("logical"), int(m.group("ms")))
        if rest == "heartbeats":
            return QueueKind("other", rest)
        return QueueKind("work", rest)


# Delays are rounded up to one of these buckets so the number of holding queues stays small;
# rounding *up* keeps the guarantee "not before the requested delay".
DELAY_BUCKETS_MS: tuple[int, ...] = (
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 1_800_000, 3_600_000, 6 * 3_600_000, 24 * 3_600_000, 7 * 24 * 3_600_000,
)


def delay_bucket(delay_ms: int) -> int:
    for bucket in DELAY_BUCKETS_MS:
        if delay_ms <= bucket:
            return bucket
    return DELAY_BUCKETS_MS[-1]
