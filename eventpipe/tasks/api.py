"""The ``@task`` declaration API and the registry of declared tasks.

A task is a plain function ``fn(rt, **kwargs)``: ``rt`` is the :class:`~eventpipe.runtime.Runtime`
(database, body store, enqueue), kwargs are JSON values. Declaring a task only records a
:class:`TaskSpec`; binding to a broker happens when a runtime starts, so one module of tasks runs
on the embedded broker, on RabbitMQ or on a federated pool unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime

TaskFn = Callable[..., Any]


class PermanentError(Exception):
    """Raised by a task for input that will never succeed: dead-lettered at once, never retried."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    fn: TaskFn
    max_retries: int | None = None  # None: the configured default
    min_backoff_ms: int | None = None
    max_backoff_ms: int | None = None
    time_limit_ms: int = 10 * 60 * 1000
    idempotency_key: Callable[[dict[str, Any]], str] | None = None
    throws: tuple[type[BaseException], ...] = ()
    doc: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "max_retries": self.max_retries,
            "time_limit_ms": self.time_limit_ms,
            "idempotent_by_key": self.idempotency_key is not None,
            "doc": self.doc,
        }


class Registry:
    """Every declared task by name. Module import declares; ``load_catalogue`` imports them all."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskSpec] = {}

    def add(self, spec: TaskSpec) -> None:
        existing = self._tasks.get(spec.name)
        if existing is not None and existing.fn.__qualname__ != spec.fn.__qualname__:
            raise ValueError(f"task {spec.name!r} is declared twice ({existing.fn.__module__} and {spec.fn.__module__})")
        self._tasks[spec.name] = spec

    def get(self, name: str) -> TaskSpec:
        try:
            return self._tasks[name]
        except KeyError:
            raise KeyError(f"no task named {name!r}; see `eventpipe tasks list`") from None

    def all(self) -> list[TaskSpec]:
        return sorted(self._tasks.values(), key=lambda s: (s.queue, s.name))

    def queues(self) -> list[str]:
        return sorted({s.queue for s in self._tasks.values()})

    def __contains__(self, name: str) -> bool:
        return name in self._tasks


registry = Registry()

_QUEUE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def task(
    name: str,
    *,
    queue: str,
    max_retries: int | None = None,
    min_backoff_ms: int | None = None,
    max_backoff_ms: int | None = None,
    time_limit_ms: int = 10 * 60 * 1000,
    idempotency_key: Callable[[dict[str, Any]], str] | None = None,
    throws: tuple[type[BaseException], ...] = (),
    **options: Any,
) -> Callable[[TaskFn], TaskFn]:
    """Declare a task. ``throws`` lists exception types that are permanent (dead-letter at once);
    :class:`PermanentError` always is. ``idempotency_key(kwargs)`` makes redeliveries of work that
    already completed a no-op (the key is recorded after success)."""
    if not set(queue) <= _QUEUE_CHARS or not queue:
        raise ValueError(f"queue name {queue!r}: use lowercase letters, digits and ._-")

    def decorate(fn: TaskFn) -> TaskFn:
        spec = TaskSpec(
            name=name,
            queue=queue,
            fn=fn,
            max_retries=max_retries,
            min_backoff_ms=min_backoff_ms,
            max_backoff_ms=max_backoff_ms,
            time_limit_ms=time_limit_ms,
            idempotency_key=idempotency_key,
            throws=(PermanentError, *throws),
            doc=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            options=options,
        )
        registry.add(spec)
        fn.task_spec = spec  # type: ignore[attr-defined]
        return fn

    return decorate


CATALOGUE_MODULES = (
    "eventpipe.tasks.events",
    "eventpipe.tasks.buffers",
    "eventpipe.tasks.rollups",
    "eventpipe.tasks.groups",
    "eventpipe.tasks.regroup",
    "eventpipe.tasks.cleanup",
    "eventpipe.ops.tasks",
)


def load_catalogue(extra_modules: tuple[str, ...] | list[str] = ()) -> Registry:
    """Import every catalogue module, the user's task modules (``EVENTPIPE_TASK_MODULES``) and
    plugin modules named in entry points, so all tasks exist in this process."""
    from importlib import import_module
    from importlib.metadata import entry_points

    for module in (*CATALOGUE_MODULES, *extra_modules):
        import_module(module)
    for ep in entry_points(group="eventpipe.tasks"):
        ep.load()
    return registry


def call(rt: Runtime, name: str, **kwargs: Any) -> Any:
    """Run a task inline, in this thread (tests, `schedules run-now --inline`)."""
    return registry.get(name).fn(rt, **kwargs)
