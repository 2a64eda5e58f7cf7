"""Tasks for the ops tests (kill switches, queue gate, dead-letter replay, metrics), on the
``testing`` queue beside the tasks of tests/support/tasks.py. Loaded through
``EVENTPIPE_TASK_MODULES`` by the runtime and by worker subprocesses alike."""

from __future__ import annotations

import time
from typing import Any

from eventpipe.tasks.api import PermanentError, task
from tests.support.tasks import flaky, permanent, slow  # noqa: F401 - the `testing` queue's tasks


@task("opstest.record", queue="testing")
def record(rt: Any, *, key: str, project_id: int = 0) -> None:
    """Leaves done/<key> in the KV store (visible across processes)."""
    rt.store.put(f"done/{key}", str(time.time()).encode())


@task("opstest.fixable", queue="testing", max_retries=0)
def fixable(rt: Any, *, key: str) -> None:
    """Fails permanently until the KV key ``fixed`` exists (the cause an operator fixes)."""
    if rt.store.get("fixed") is None:
        raise PermanentError("dependency missing: the KV key 'fixed' is not set yet")
    rt.store.put(f"done/{key}", b"1")
