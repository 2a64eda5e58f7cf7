"""The batch no-op task (loaded with ``EVENTPIPE_TASK_MODULES=benchmarks.bench_batch_tasks``).

``bench.noop_batch`` is declared with ``batch=True``: the function receives a list of items and
does nothing with them, so what is measured is eventpipe's cost per *item* when many items share
a message (publish packing by ``enqueue_many``, one delivery, one ack). With ``BENCH_COUNT_DIR``
set, each call appends ``<wall time> <items>`` to ``$BENCH_COUNT_DIR/<pid>.log`` (one ``write``
per call), so the benchmark counts items, not messages.

On a core without batch tasks (``task()`` has no ``batch`` parameter) the same declaration is a
plain task that gets one item per message: ``BATCH_API`` tells the benchmark which it measured.
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any

try:
    from eventpipe import task  # the task-handle API
except ImportError:  # before the core rewrite
    from eventpipe.tasks.api import task  # type: ignore[no-redef]

BATCH_API = "batch" in inspect.signature(task).parameters

_fd: dict[int, int] = {}  # pid -> file descriptor (a forked child opens its own file)


def _count(n: int) -> None:
    folder = os.environ.get("BENCH_COUNT_DIR")
    if not folder:
        return
    pid = os.getpid()
    if pid not in _fd:
        _fd[pid] = os.open(os.path.join(folder, f"{pid}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd[pid], f"{time.time():.6f} {n}\n".encode())


@task("bench.noop_batch", queue="benchbatch", batch=True)
def noop_batch(ctx: Any, *args: Any, **kwargs: Any) -> None:
    """Do nothing with a list of items (benchmark)."""
    if args:
        items = args[0]
    elif "items" in kwargs:
        items = kwargs["items"]
    else:
        items = [kwargs]  # no batch API: one item's kwargs
    _count(len(items))
