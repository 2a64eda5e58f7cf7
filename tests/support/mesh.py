"""Plain-pika helpers for the federation tests: bulk publish, consume on several nodes, count.

Why plain pika: these tests check what the *broker mesh* does (does every message arrive, how
many twice, how many hops), independent of dramatiq and of eventpipe's own broker code.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pika


def publish_fast(amqp_url: str, queue: str, count: int, *, start: int = 0) -> float:
    """Publish without confirms, then wait until the queue holds them all; returns seconds."""
    t0 = time.monotonic()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        before = ch.queue_declare(queue, passive=True).method.message_count
        for i in range(start, start + count):
            ch.basic_publish("", queue, b"x" * 64, pika.BasicProperties(message_id=f"m{i}", delivery_mode=2))
        deadline = time.monotonic() + 60
        while ch.queue_declare(queue, passive=True).method.message_count < before + count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{queue} did not reach {before + count} messages")
            conn.sleep(0.05)
    finally:
        conn.close()
    return time.monotonic() - t0


def depth(amqp_url: str, queue: str) -> int:
    """Exact ready count (passive declare), unlike management stats that lag."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def purge(amqp_url: str, queue: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        conn.channel().queue_purge(queue)
    finally:
        conn.close()


@dataclass
class Received:
    ids: Counter[str] = field(default_factory=Counter)
    per_node: Counter[str] = field(default_factory=Counter)
    hops: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_at: float | None = None
    last_at: float | None = None

    @property
    def unique(self) -> int:
        return len(self.ids)

    @property
    def duplicates(self) -> int:
        return sum(self.ids.values()) - len(self.ids)

    @property
    def multi_hop(self) -> int:
        return sum(n for h, n in self.hops.items() if h >= 2)

    def rate(self) -> float:
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return sum(self.ids.values()) / (self.last_at - self.first_at)


def hop_count(headers: dict[str, Any] | None) -> int:
    """Federation appends one entry to ``x-received-from`` per hop."""
    if not headers:
        return 0
    return len(headers.get("x-received-from") or [])


class Consumers:
    """One basic.consume consumer thread per node URL, acking every message, until stopped."""

    def __init__(self, nodes: dict[str, str], queue: str, prefetch: int = 100) -> None:
        self.received = Received()
        self._stop = threading.Event()
        self._ready = threading.Barrier(len(nodes) + 1)
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(label, url, queue, prefetch), daemon=True)
            for label, url in nodes.items()
        ]

    def __enter__(self) -> Consumers:
        for t in self._threads:
            t.start()
        self._ready.wait(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _run(self, label: str, url: str, queue: str, prefetch: int) -> None:
        rec = self.received
        try:
            conn = pika.BlockingConnection(pika.URLParameters(url))
            ch = conn.channel()
            ch.basic_qos(prefetch_count=prefetch)

            def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
                now = time.monotonic()
                with rec.lock:
                    rec.ids[props.message_id] += 1
                    rec.per_node[label] += 1
                    rec.hops[hop_count(props.headers)] += 1
                    rec.first_at = rec.first_at or now
                    rec.last_at = now
                channel.basic_ack(method.delivery_tag)

            ch.basic_consume(queue, on_message)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
            self._ready.wait(timeout=30)
            return
        self._ready.wait(timeout=30)
        try:
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.2)
            conn.close()
        except BaseException as exc:  # noqa: BLE001
            self.errors.append(exc)

    def wait_for(self, unique: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.received.unique >= unique or self.errors:
                return self.received.unique >= unique
            time.sleep(0.1)
        return False
