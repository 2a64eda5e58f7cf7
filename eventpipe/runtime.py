"""The Runtime: wires the configured database, body store and broker, and binds tasks to it.

The CLI, the ingest endpoint, the worker and the Python API build one with :func:`open_runtime`.
It is where "embedded or RabbitMQ" is decided, once. Tasks never see it: they receive its
:class:`Context` (database, body store, settings, enqueue), which satisfies
:class:`~eventpipe.tasks.api.TaskContext`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dramatiq
import orjson
from dramatiq.common import compute_backoff
from dramatiq.encoder import Encoder
from dramatiq.message import Message
from dramatiq.middleware import CurrentMessage

from eventpipe.config import Settings, get_settings
from eventpipe.kvstore import KeyValueStore, open_configured_store
from eventpipe.metadata.db import Database, utcnow
from eventpipe.queues.topology import Topology
from eventpipe.tasks.api import MAX_BATCH_BYTES, Item, Registry, Task, load_catalogue
from eventpipe.tasks.batch import FailItem, pack, run_batch
from eventpipe.tasks.coalesce import Coalescer
from eventpipe.middleware import default_middleware, is_transient
from eventpipe.queues.failures import dead_letter_info, record_failure

if TYPE_CHECKING:
    from eventpipe.ingest.submit import Submitter

log = logging.getLogger("eventpipe")


class OrjsonEncoder(Encoder):
    """JSON only (never pickle), with orjson: batch messages carry hundreds of items."""

    def encode(self, data: dict[str, Any]) -> bytes:
        return orjson.dumps(data)

    def decode(self, data: bytes) -> dict[str, Any]:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            from dramatiq.errors import DecodeError

            raise DecodeError("not a JSON message", data, exc) from None


dramatiq.set_encoder(OrjsonEncoder())


@dataclass(frozen=True, eq=False)
class Context:
    """What tasks receive (:class:`~eventpipe.tasks.api.TaskContext`): no broker, no registry."""

    db: Database
    store: KeyValueStore
    settings: Settings
    _runtime: Runtime

    def enqueue(
        self, task: Task | str, /, *, delay_ms: int | None = None, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> str:
        return self._runtime.enqueue(task, delay_ms=delay_ms, options=options, **kwargs)

    def enqueue_many(self, task: Task | str, items: Iterable[Item], /) -> int:
        return self._runtime.enqueue_many(task, items)


class Runtime:
    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self.topology = Topology(settings.queue_prefix)
        self.registry: Registry = load_catalogue(settings.task_modules)
        self.db = Database(settings.resolved_database_url())
        if migrate:
            self.db.upgrade()
        self.store: KeyValueStore = open_configured_store(settings)  # dual-write while EVENTPIPE_KV_OLD_URL is set
        self.context = Context(self.db, self.store, settings, self)
        self.broker = self._make_broker()
        self.actors: dict[str, dramatiq.Actor] = {}
        self._bind_tasks()

    # Broker ------------------------------------------------------------------------------------
    def _make_broker(self) -> dramatiq.Broker:
        if self.settings.embedded:
            from eventpipe.queues.embedded import EmbeddedBroker

            return EmbeddedBroker(default_middleware(self.db, self.topology, self.settings), on_dead_letter=self._record_dead_letter)
        from eventpipe.queues.rabbitmq import RabbitBroker

        settings = self.settings
        return RabbitBroker(
            settings.amqp_urls,
            self.topology,
            middleware=default_middleware(self.db, self.topology, self.settings),
            window=settings.confirm_window,
            consume_nodes=settings.consume_nodes or None,
            strategy=settings.publish_strategy,
            preferred=settings.preferred_node,
            excluded=self.drained_nodes,
        )

    def _bind_tasks(self) -> None:
        for spec in self.registry.all():
            self.actors[spec.name] = dramatiq.Actor(
                self._bound(spec),
                broker=self.broker,
                actor_name=spec.name,
                queue_name=self.topology.queue(spec.queue),
                priority=0,
                options=self._actor_options(spec),
            )

    def _actor_options(self, spec: Task) -> dict[str, Any]:
        opts: dict[str, Any] = {"time_limit": spec.time_limit_ms, "throws": spec.throws}
        if spec.max_retries is not None:
            opts["max_retries"] = spec.max_retries
        if spec.min_backoff_ms is not None:
            opts["min_backoff"] = spec.min_backoff_ms
        if spec.max_backoff_ms is not None:
            opts["max_backoff"] = spec.max_backoff_ms
        return opts

    def _bound(self, spec: Task) -> Any:
        ctx = self.context
        if spec.batch:
            coalescer = Coalescer(spec.batch_size)

            def execute(items: Sequence[Item], fail_item: FailItem) -> None:
                run_batch(spec, ctx, items, fail_item, is_transient)

            def run(items: list[Item]) -> None:
                parent = CurrentMessage.get_current_message()  # this thread's message, for its items' retries
                coalescer.run(items, lambda item, exc: self._fail_item(spec, item, exc, parent), execute)

        elif spec.idempotency_key is not None:
            from eventpipe.tasks.receipts import run_once

            def run(**kwargs: Any) -> None:
                run_once(ctx, spec, kwargs)

        else:
            # A task's return value serves inline calls; through the broker it is dropped here,
            # rather than by dramatiq with a warning per message.
            def run(**kwargs: Any) -> None:
                spec.fn(ctx, **kwargs)

        run.__name__ = spec.fn.__name__
        run.__qualname__ = spec.fn.__qualname__
        run.__module__ = spec.fn.__module__
        return run

    def _fail_item(self, spec: Task, item: Item, exc: BaseException, parent: Message[Any] | None) -> None:
        """One item of a batch failed while the rest succeeded: send it on alone, as a retry with
        its backoff delay, or to the dead-letter queue when it is permanent or out of retries.
        ``parent`` is the message the item came in (its retry count carries over)."""
        actor = self.actors[spec.name]
        options: dict[str, Any] = {}
        if parent is not None:
            options = {k: v for k, v in parent.options.items() if k in ("failures", "retries", "outage_retries")}
        record_failure(options, exc)
        retries = options.get("retries", 0) + 1
        options["retries"] = retries
        message = actor.message_with_options(kwargs={"items": [item]}, **options)
        max_retries = spec.max_retries if spec.max_retries is not None else self.settings.max_retries
        permanent = isinstance(exc, spec.throws) or (retries > max_retries and not is_transient(exc))
        log.warning("item of %s failed (%s); %s", spec.name, options["last_error"], "dead-lettered" if permanent else "retried alone")
        if permanent:
            self.broker.dead_letter_message(message)
            return
        _, delay = compute_backoff(
            retries,
            factor=spec.min_backoff_ms or self.settings.min_backoff_ms,
            max_backoff=spec.max_backoff_ms or self.settings.max_backoff_ms,
        )
        self.broker.enqueue(message, delay=delay)

    def _record_dead_letter(self, queue_name: str, message: Any) -> None:
        from eventpipe.metadata.models import DeadLetter

        info = dead_letter_info(message)
        with self.db.session() as s:
            s.add(
                DeadLetter(
                    queue=self.topology.logical(queue_name),
                    task=message.actor_name,
                    message_id=message.message_id,
                    message=message.asdict(),
                    reason=info["reason"],
                    traceback=info["traceback"],
                    attempts=info["attempts"],
                    failed_at=utcnow(),
                )
            )

    # Publishing --------------------------------------------------------------------------------
    def enqueue(
        self, task: Task | str, /, *, delay_ms: int | None = None, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> str:
        """Publish one task message (for a batch task: one item); returns once the broker has it
        (confirmed on RabbitMQ), with the message id. ``options`` are message options for
        middleware (e.g. ``expires_at`` for scheduled slots)."""
        spec = self.registry.resolve(task)
        actor = self.actors[spec.name]
        message = actor.message_with_options(kwargs={"items": [kwargs]} if spec.batch else kwargs, **(options or {}))
        self.broker.enqueue(message, delay=delay_ms)
        return message.message_id

    def enqueue_many(self, task: Task | str, items: Iterable[Item]) -> int:
        """Publish many calls of one task in one confirm window; returns the number of items.
        A batch task's items are packed into messages of at most ``batch_size`` items and
        ``MAX_BATCH_BYTES`` bytes."""
        spec = self.registry.resolve(task)
        actor = self.actors[spec.name]
        items = list(items)
        if not items:
            return 0
        if spec.batch:
            sizes = [len(orjson.dumps(item)) for item in items]
            chunks = pack(items, sizes, max_items=spec.batch_size, max_bytes=MAX_BATCH_BYTES)
            messages = [actor.message_with_options(kwargs={"items": chunk}) for chunk in chunks]
        else:
            messages = [actor.message_with_options(kwargs=kw) for kw in items]
        self.broker.enqueue_many(messages)
        return len(items)

    @functools.cached_property
    def submitter(self) -> Submitter:
        """Accepts events for this runtime (project cache, coalescing of concurrent callers)."""
        from eventpipe.ingest.submit import Submitter

        return Submitter(self.context)

    def pin_node(self, node: str) -> None:
        """Publish only to the broker node HOST:PORT (``--node``)."""
        self.broker.pin_node(node)

    # ops: nodes `eventpipe ops drain --node` flagged; the broker's publishers skip them. Cached ~2 s.
    def drained_nodes(self) -> set[str]:
        from eventpipe.metadata.flags import drained_nodes

        return drained_nodes(self)

    def queue_names(self) -> list[str]:
        return [self.topology.queue(q) for q in self.registry.queues()]

    def close(self) -> None:
        try:
            self.broker.close()
        finally:
            self.store.close()
            self.db.dispose()


_current: Runtime | None = None
_lock = threading.Lock()


def open_runtime(settings: Settings | None = None) -> Runtime:
    """The process-wide runtime (created on first use)."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(settings or get_settings())
        return _current


def reset_runtime() -> None:
    """Close and forget the process-wide runtime (tests, CLI teardown)."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None
