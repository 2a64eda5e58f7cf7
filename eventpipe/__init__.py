"""eventpipe: offline task processing for event pipelines.

The Python API: ``eventpipe.submit(project_id, event)`` accepts one event (a dict, or JSON
bytes) and returns its event id once the broker has it (concurrent callers share one store write
and one confirmed publish); in the embedded mode call ``eventpipe.process_pending()`` to run the
in-process workers until the queues are empty. Declare your own tasks with :func:`task`; they
receive a :class:`TaskContext`.
"""

from __future__ import annotations

from typing import Any

from eventpipe.errors import EventpipeError, UnknownJob, UnknownTask
from eventpipe.tasks.api import ItemFailures, PermanentError, Task, TaskContext, task

__version__ = "0.1.0"

# The errors a user of the API catches, each an EventpipeError. They live beside the code that
# raises them and are imported on first use, so `import eventpipe` stays light and cycle-free.
_LAZY_ERRORS = {
    "ConfigError": "eventpipe.config",
    "InvalidEvent": "eventpipe.pipeline.errors",
    "KVError": "eventpipe.kvstore.base",
    "KVUnavailable": "eventpipe.kvstore.base",
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
    """Submit one event; returns its event id. Raises InvalidEvent (bad input) or SubmitError."""
    from eventpipe.pipeline.errors import InvalidEvent
    from eventpipe.runtime import open_runtime

    result = open_runtime().submitter.submit_coalesced(project_id, [event])
    if result.rejected:
        r = result.rejected[0]
        raise InvalidEvent(r.reason, r.field, r.detail)
    return (result.accepted or result.duplicates)[0]


def submit_many(project_id: int, events: list[Any]) -> Any:
    """Submit a batch of one project's events; returns a SubmitResult (accepted, duplicates, rejected)."""
    from eventpipe.runtime import open_runtime

    return open_runtime().submitter.submit_many(project_id, events)


def process_pending(threads: int = 4) -> None:
    """Embedded mode only: run the in-process workers until every queue is empty."""
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    if not rt.settings.embedded:
        raise EventpipeError("process_pending() is for the embedded mode; run `eventpipe worker` against RabbitMQ")
    rt.broker.run_until_idle(threads=threads)


__all__ = [
    "ConfigError",
    "EventpipeError",
    "InvalidEvent",
    "ItemFailures",
    "KVError",
    "KVUnavailable",
    "PermanentError",
    "PublishError",
    "SubmitError",
    "Task",
    "TaskContext",
    "UnknownJob",
    "UnknownTask",
    "process_pending",
    "submit",
    "submit_many",
    "task",
]
