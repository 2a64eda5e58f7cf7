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


@task("testing.slow", queue="testing")
def slow(rt: Any, *, key: str, seconds: float) -> None:
    rt.store.put(f"started/{key}", b"1")
    time.sleep(seconds)
    rt.store.put(f"done/{key}", b"1")
