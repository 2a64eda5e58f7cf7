"""eventpipe: offline task processing for event pipelines.

The Python API: ``eventpipe.submit(project_id, event)`` accepts one event (a dict, or JSON
bytes) and returns its event id once the broker has it; in the embedded mode call
``eventpipe.process_pending()`` to run the in-process workers until the queues are empty.
"""

from __future__ import annotations

from typing import Any

from eventpipe.errors import EventpipeError, UnknownJob, UnknownTask

__version__ = "0.1.0"

# The errors a user of the API catches, each an EventpipeError. They live beside the code that
# raises them and are imported on first use, so `import eventpipe` stays light and cycle-free.
_LAZY_ERRORS = {
    "ConfigError": "eventpipe.config",
    "InvalidEvent": "eventpipe.pipeline.errors",
    "KVError": "eventpipe.kvstore.base",
    "KVUnavailable": "eventpipe.kvstore.base",
    "PermanentError": "eventpipe.tasks.api",
    "PublishError": "eventpipe.queues.publisher",
    "SubmitError": "eventpipe.ingest.submit",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_ERRORS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventpipe' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


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


__all__ = [
    "ConfigError",
    "EventpipeError",
    "InvalidEvent",
    "KVError",
    "KVUnavailable",
    "PermanentError",
    "PublishError",
    "SubmitError",
    "UnknownJob",
    "UnknownTask",
    "process_pending",
    "submit",
]
