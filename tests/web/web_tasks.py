"""Tasks for the console's RabbitMQ browser test; effects are KV keys, visible across processes."""

from __future__ import annotations

from typing import Any

from eventpipe.tasks.api import PermanentError, task


@task("webtest.record", queue="webtest")
def record(rt: Any, *, key: str) -> None:
    rt.store.put(f"done/{key}", b"1")


@task("webtest.fixable", queue="webtest", max_retries=0)
def fixable(rt: Any, *, key: str) -> None:
    """Fails permanently until the KV key ``fixed`` exists (the cause an operator fixes)."""
    if rt.store.get("fixed") is None:
        raise PermanentError("dependency missing: the KV key 'fixed' is not set yet")
    rt.store.put(f"done/{key}", b"1")
