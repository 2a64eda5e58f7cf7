"""eventpipe: offline task processing for event pipelines.

The Python API: ``eventpipe.submit(project_id, event)`` accepts one event (a dict, or JSON
bytes) and returns its event id once the broker has it; in the embedded mode call
``eventpipe.process_pending()`` to run the in-process workers until the queues are empty.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def submit(project_id: int, event: Any) -> str:
    from eventpipe.ingest.submit import submit as _submit
    from eventpipe.runtime import open_runtime

    return _submit(open_runtime(), project_id, event)


def process_pending(threads: int = 4) -> None:
    """Embedded mode only: run the in-process workers until every queue is empty."""
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    if not rt.settings.embedded:
        raise RuntimeError("process_pending() is for the embedded mode; run `eventpipe worker` against RabbitMQ")
    rt.broker.run_until_idle(threads=threads)


__all__ = ["process_pending", "submit"]
