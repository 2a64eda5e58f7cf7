"""eventpipe tasks used by the benchmarks (loaded with ``EVENTPIPE_TASK_MODULES=benchmarks.bench_tasks``).

``bench.noop`` does nothing: what is measured is eventpipe's own cost per task (consume, decode,
middleware, ack), the same work a plain Dramatiq or Celery no-op measures.

With ``BENCH_HOPS_DIR`` set (federation benchmark only), the worker counts how many federation
hops each delivered message took (entries in its ``x-received-from`` header) and writes the counts
to ``$BENCH_HOPS_DIR/<pid>.json`` twice a second. eventpipe's consumer drops AMQP headers before
the task runs, so this wraps the consumer's delivery iterator (benchmark-side instrumentation: a
generator step and a dict increment per message; no change to what the worker does).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from typing import Any

from eventpipe.tasks.api import task


@task("bench.noop", queue="bench")
def noop(rt: Any, **kwargs: Any) -> None:
    """Do nothing (benchmark)."""


def _install_hop_counter(folder: str) -> None:
    from eventpipe.queues import rabbitmq

    counts: Counter[int] = Counter()
    nodes: Counter[str] = Counter()
    lock = threading.Lock()
    original_connect = rabbitmq.NodeConsumer.connect

    def counted(iterator: Any, node_name: str) -> Any:
        for item in iterator:
            method, properties, _body = item
            if method is not None:
                headers = (properties.headers or {}) if properties is not None else {}
                hops = len(headers.get("x-received-from") or [])
                with lock:
                    counts[hops] += 1
                    nodes[node_name] += 1
            yield item

    def connect(self: Any) -> bool:
        fresh = self.connection is None
        ok = original_connect(self)
        if ok and fresh and self.iterator is not None:
            self.iterator = counted(self.iterator, self.name)
        return ok

    rabbitmq.NodeConsumer.connect = connect  # type: ignore[method-assign]
    path = os.path.join(folder, f"{os.getpid()}.json")

    def flush() -> None:
        while True:
            threading.Event().wait(0.5)
            with lock:
                data = {"hops": dict(counts), "nodes": dict(nodes)}
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)

    threading.Thread(target=flush, daemon=True, name="bench-hops").start()


if os.environ.get("BENCH_HOPS_DIR"):
    _install_hop_counter(os.environ["BENCH_HOPS_DIR"])
