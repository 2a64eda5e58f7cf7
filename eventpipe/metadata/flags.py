"""Persisted operator flags (drained nodes, closed queues, pauses) and their cached readers.

Publishers consult :func:`drained_nodes` on every publish, so it is cached per database for
``CACHE_S`` seconds: a drain reaches every process within ~2 s without a query per message. A
database error keeps the last known value (a metadata hiccup must never stop publishing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import QueuePause
from eventpipe.metadata.repo import insert_ignore

from eventpipe.metadata.models import ClosedQueue, DrainedNode

log = logging.getLogger("eventpipe.ops")

CACHE_S = 2.0


class _Cached:
    """A value read at most once per ``ttl`` seconds per key, shared by every thread."""

    def __init__(self, ttl: float = CACHE_S) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._values: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, load: Callable[[], Any], default: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        try:
            value = load()
        except Exception:
            log.warning("could not read ops flags; keeping the last known ones", exc_info=True)
            value = hit[1] if hit is not None else default
        with self._lock:
            self._values[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


_cache = _Cached()


# Drained nodes -----------------------------------------------------------------------------------
def load_drained_nodes(db: Any) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(DrainedNode.node)))


def drained_nodes(rt: Any) -> set[str]:
    """Node names (``HOST:PORT``) publishers must avoid; cached ~2 s. What ``rt.drained_nodes()`` returns."""
    return set(_cache.get(("drained", rt.db.url), lambda: load_drained_nodes(rt.db), set()))


def mark_drained(db: Any, node: str, reason: str = "") -> bool:
    """Persist the routing flag; True when it was not set before."""
    with db.session() as s:
        n = insert_ignore(s, DrainedNode, [{"node": node, "drained_at": utcnow(), "reason": reason}], ["node"])
    _cache.clear()
    return n == 1


def clear_drained(db: Any, node: str) -> bool:
    with db.session() as s:
        n = s.execute(delete(DrainedNode).where(DrainedNode.node == node)).rowcount
    _cache.clear()
    return bool(n)


# Closed queues -----------------------------------------------------------------------------------
def load_closed_queues(db: Any) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(ClosedQueue.queue)))


def closed_queues(db: Any) -> set[str]:
    """Logical queues refusing new work; cached ~2 s (read by :class:`eventpipe.middleware.gate.QueueGate`)."""
    return set(_cache.get(("closed", db.url), lambda: load_closed_queues(db), set()))


def close_queue(db: Any, queue: str, reason: str = "") -> bool:
    with db.session() as s:
        n = insert_ignore(s, ClosedQueue, [{"queue": queue, "closed_at": utcnow(), "reason": reason}], ["queue"])
    _cache.clear()
    return n == 1


def open_queue(db: Any, queue: str) -> bool:
    with db.session() as s:
        n = s.execute(delete(ClosedQueue).where(ClosedQueue.queue == queue)).rowcount
    _cache.clear()
    return bool(n)


# Pauses (workers follow the queue_pauses table, eventpipe.worker) ---------------------------
def pause_queue(db: Any, queue: str, reason: str = "") -> bool:
    with db.session() as s:
        n = insert_ignore(s, QueuePause, [{"queue": queue, "paused_at": utcnow(), "reason": reason}], ["queue"])
    return n == 1


def resume_queue(db: Any, queue: str) -> bool:
    with db.session() as s:
        n = s.execute(delete(QueuePause).where(QueuePause.queue == queue)).rowcount
    return bool(n)


def paused(db: Any) -> list[dict[str, Any]]:
    with db.session() as s:
        return [
            {"queue": p.queue, "paused_at": p.paused_at.isoformat() + "Z", "reason": p.reason}
            for p in s.scalars(select(QueuePause).order_by(QueuePause.queue))
        ]


def clear_cache() -> None:
    _cache.clear()
