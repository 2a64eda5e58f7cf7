"""Tasks used by the RabbitMQ tests. Effects are KV keys, so they are visible across processes."""

from __future__ import annotations

import time
from typing import Any

from eventpipe.tasks.api import PermanentError, task


@task("testing.permanent", queue="testing", max_retries=3)
def permanent(rt: Any, *, what: str) -> None:
    """Always rejects its input: must be dead-lettered at once, never retried."""
    raise PermanentError(f"cannot use {what!r}")


@task("testing.flaky", queue="testing", max_retries=3, min_backoff_ms=2000, max_backoff_ms=2000)
def flaky(rt: Any, *, key: str) -> None:
    """Fails on its first attempt, succeeds on the retry."""
    marker = f"attempt/{key}"
    if rt.store.get(marker) is None:
        rt.store.put(marker, str(time.time()).encode())
        raise RuntimeError("first attempt fails on purpose")
    rt.store.put(f"done/{key}", str(time.time()).encode())


@task("testing.flaky_late", queue="testing", max_retries=3, min_backoff_ms=10_000, max_backoff_ms=10_000)
def flaky_late(rt: Any, *, key: str) -> None:
    """Like ``testing.flaky`` with a 10 s retry delay: long enough to watch it wait in the broker
    on a loaded machine."""
    flaky.fn(rt, key=key)


@task("testing.slow", queue="testing")
def slow(rt: Any, *, key: str, seconds: float) -> None:
    rt.store.put(f"started/{key}", b"1")
    time.sleep(seconds)
    rt.store.put(f"done/{key}", b"1")


@task("testing.effect", queue="testing")
def effect(rt: Any, *, key: str) -> None:
    """An idempotent effect that also counts deliveries: one row per key, ``deliveries`` shows
    how often the broker delivered it (duplicates after a node crash are expected, DESIGN §7)."""
    import os

    from sqlalchemy import text

    with rt.db.session() as s:
        s.execute(
            text(
                "INSERT INTO test_effects (key, worker, deliveries) VALUES (:k, :w, 1) "
                "ON CONFLICT (key) DO UPDATE SET deliveries = test_effects.deliveries + 1"
            ),
            {"k": key, "w": os.environ.get("EP_TEST_TAG", "")},
        )


#: Items each successful call of ``testing.batch_record`` committed, in this process (embedded tests).
BATCH_CALLS: list[list[int]] = []


@task("testing.batch_record", queue="testing.batch", batch=True, batch_size=10, max_retries=1,
      min_backoff_ms=10, max_backoff_ms=20)
def batch_record(rt: Any, items: list[dict[str, Any]]) -> None:
    """All or nothing per call: any poison item fails the whole call (as one SQL transaction would);
    a successful call records its item ids once and writes one KV key per item."""
    for item in items:
        if item.get("poison"):
            raise ValueError(f"item {item['id']} is poison")
    rt.store.put_many({f"batch/{item['id']}": item.get("pad", "").encode() or b"1" for item in items})
    BATCH_CALLS.append([item["id"] for item in items])
