"""The ``@task`` declaration API: task handles, batch tasks, and the context a task receives.

``@task("shop.reindex", queue="shop")`` turns a function ``fn(ctx, **kwargs)`` into a :class:`Task`
handle. Tasks enqueue each other through handles (``reindex.send(ctx, product_id=3)``), so the
pipeline can be followed with go-to-definition and a misspelt task is an undefined name, not a
message that fails in production. Declaring a task only records it; binding to a broker happens
when a runtime starts, so one module of tasks runs on the embedded broker, on RabbitMQ or on a
federated pool unchanged.

A *batch* task (``batch=True``) receives ``fn(ctx, items)``: a list of JSON objects that arrived
in one message. ``enqueue_many`` packs items into messages of at most ``batch_size`` items and
:data:`MAX_BATCH_BYTES` bytes. The function may return :class:`ItemFailures` naming items that
failed; each is retried (re-published alone, with its retry delay) or dead-lettered on its own,
while the rest of the message succeeds. See :mod:`eventpipe.tasks.batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from eventpipe.errors import EventpipeError, UnknownTask


if TYPE_CHECKING:
    from eventpipe.config import Settings
    from eventpipe.kvstore import KeyValueStore
    from eventpipe.metadata.db import Database

TaskFn = Callable[..., Any]
Item = dict[str, Any]

#: Upper bound of one batch message's encoded items; larger batches are split on enqueue.
MAX_BATCH_BYTES = 512 * 1024


class PermanentError(EventpipeError):
    """Raised by a task for input that will never succeed: dead-lettered at once, never retried."""


class TaskContext(Protocol):
    """What a task receives: the metadata database, the body store, the settings, and enqueueing.

    A Protocol rather than the runtime class, so the task layer never imports the composition
    root (and tests can hand tasks anything with these attributes)."""

    @property
    def db(self) -> Database: ...

    @property
    def store(self) -> KeyValueStore: ...

    @property
    def settings(self) -> Settings: ...

    def enqueue(
        self, task: Task | str, /, *, delay_ms: int | None = None, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> None: ...

    def enqueue_many(self, task: Task | str, items: Iterable[Item], /) -> int: ...


@dataclass(frozen=True)
class ItemFailures:
    """Returned by a batch task: the items (by index) that failed, with their exceptions.

    Permanent failures (:class:`PermanentError` or the task's ``throws``) are dead-lettered; the
    others are re-published alone with a retry delay."""

    errors: Mapping[int, BaseException] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.errors)


@dataclass(frozen=True, eq=False)
class Task:
    """A declared task: its options and a handle to send it or run it inline."""

    name: str
    queue: str
    fn: TaskFn
    max_retries: int | None = None  # None: the configured default
    min_backoff_ms: int | None = None
    max_backoff_ms: int | None = None
    time_limit_ms: int = 10 * 60 * 1000
    idempotency_key: Callable[[dict[str, Any]], str] | None = None
    throws: tuple[type[BaseException], ...] = ()
    batch: bool = False
    batch_size: int = 500
    schedule: dict[str, Any] | None = None  # periodic schedule declared beside the task
    doc: str = ""

    def send(self, ctx: TaskContext, /, *, delay_ms: int | None = None, **kwargs: Any) -> None:
        """Enqueue one message (for a batch task: one item)."""
        ctx.enqueue(self, delay_ms=delay_ms, **kwargs)

    def send_many(self, ctx: TaskContext, items: Iterable[Item], /) -> int:
        """Enqueue many calls; a batch task packs them into messages of ``batch_size`` items."""
        return ctx.enqueue_many(self, items)

    def message(self, **kwargs: Any) -> dict[str, Any]:
        """The JSON message this task is sent as (for tools that publish by hand)."""
        return {"task": self.name, "queue": self.queue, "kwargs": {"items": [kwargs]} if self.batch else kwargs}

    def __call__(self, ctx: TaskContext, /, *args: Any, **kwargs: Any) -> Any:
        """Run inline, in this thread (tests, `schedules run-now --inline`)."""
        return self.fn(ctx, *args, **kwargs)

    def as_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "max_retries": self.max_retries,
            "time_limit_ms": self.time_limit_ms,
            "idempotent_by_key": self.idempotency_key is not None,
            "batch": self.batch,
            "schedule": _describe(self.schedule),
            "doc": self.doc,
        }


def _describe(schedule: dict[str, Any] | None) -> str | None:
    if not schedule:
        return None
    return f"every {schedule['every']}" if schedule.get("every") else f"cron {schedule.get('cron')}"


class Registry:
    """Every declared task by name. Module import declares; ``load_catalogue`` imports them all."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def add(self, spec: Task) -> None:
        existing = self._tasks.get(spec.name)
        if existing is not None and existing.fn.__qualname__ != spec.fn.__qualname__:
            raise ValueError(f"task {spec.name!r} is declared twice ({existing.fn.__module__} and {spec.fn.__module__})")
        self._tasks[spec.name] = spec

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(name) from None

    def resolve(self, task: Task | str) -> Task:
        return self.get(task) if isinstance(task, str) else task

    def all(self) -> list[Task]:
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
    batch: bool = False,
    batch_size: int = 500,
    every: str | float | None = None,
    cron: str | None = None,
    schedule: Mapping[str, Any] | None = None,
) -> Callable[[TaskFn], Task]:
    """Declare a task and return its handle.

    ``throws`` lists exception types that are permanent (dead-letter at once); :class:`PermanentError`
    always is. ``idempotency_key(kwargs)`` makes redeliveries of work that already completed a no-op
    (the key is recorded after success). ``batch=True`` makes the function receive a list of items.
    ``every``/``cron`` declare a periodic schedule beside the task; ``schedule`` passes the other
    schedule options (``expires_s``, ``catch_up``, ``jitter_s``, ``kwargs``...). Unknown options are
    a ``TypeError``, as for any Python call."""
    if not set(queue) <= _QUEUE_CHARS or not queue:
        raise ValueError(f"queue name {queue!r}: use lowercase letters, digits and ._-")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    periodic: dict[str, Any] | None = None
    if every is not None or cron is not None:
        periodic = {"every": every, "cron": cron, **(schedule or {})}
    elif schedule:
        raise ValueError(f"task {name!r}: schedule options need every= or cron=")

    def decorate(fn: TaskFn) -> Task:
        spec = Task(
            name=name,
            queue=queue,
            fn=fn,
            max_retries=max_retries,
            min_backoff_ms=min_backoff_ms,
            max_backoff_ms=max_backoff_ms,
            time_limit_ms=time_limit_ms,
            idempotency_key=idempotency_key,
            throws=(PermanentError, *throws),
            batch=batch,
            batch_size=batch_size,
            schedule=periodic,
            doc=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
        )
        registry.add(spec)
        return spec

    return decorate


CATALOGUE_MODULES = (
    "eventpipe.tasks.events",
    "eventpipe.tasks.buffers",
    "eventpipe.tasks.rollups",
    "eventpipe.tasks.groups",
    "eventpipe.tasks.regroup",
    "eventpipe.tasks.cleanup",
    "eventpipe.ops.tasks",
    "eventpipe.tasks.notify",
    "eventpipe.tasks.notify_send",
    "eventpipe.tasks.reports",
    "eventpipe.tasks.monitors",
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
