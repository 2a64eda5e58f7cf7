"""The Runtime: one object that owns the configured database, body store and broker.

Tasks receive it as their first argument; the CLI, the ingest endpoint and the Python API build
one with :func:`open_runtime`. It is where "embedded or RabbitMQ" is decided, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import dramatiq
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import CurrentMessage, ShutdownNotifications, TimeLimit

from eventpipe.errors import UnknownTask
from eventpipe.config import Settings, get_settings
from eventpipe.kvstore import KeyValueStore, open_configured_store
from eventpipe.metadata.db import Database, utcnow
from eventpipe.ops.gate import QueueGate
from eventpipe.ops.killswitch import KillSwitch
from eventpipe.ops.metrics import TaskMetrics
from eventpipe.schedules.expiry import SlotExpiry
from eventpipe.queues.topology import Topology
from eventpipe.tasks.api import Registry, TaskSpec, load_catalogue
from eventpipe.tasks.middleware import FailureHistory, SafeRetries, dead_letter_info

log = logging.getLogger("eventpipe")

# JSON only: dramatiq's default is JSON too, but set it explicitly so nothing can swap in pickle.
dramatiq.set_encoder(JSONEncoder())


class Runtime:
    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self.topology = Topology(settings.queue_prefix)
        self.registry: Registry = load_catalogue(settings.task_modules)
        self.db = Database(settings.resolved_database_url())
        if migrate:
            self.db.upgrade()
        self.store: KeyValueStore = open_configured_store(settings)  # dual-write while EVENTPIPE_KV_OLD_URL is set
        self.broker = self._make_broker()
        self.actors: dict[str, dramatiq.Actor] = {}
        self._bind_tasks()

    # Broker ------------------------------------------------------------------------------------
    def _middleware(self) -> list[Any]:
        return [
            TimeLimit(),
            ShutdownNotifications(),
            CurrentMessage(),
            SlotExpiry(),
            SafeRetries(
                max_retries=self.settings.max_retries,
                min_backoff=self.settings.min_backoff_ms,
                max_backoff=self.settings.max_backoff_ms,
            ),
            KillSwitch(self.db),  # operators' rules: drop matching messages, counted
            QueueGate(self.db, self.topology),  # `ops drain --queue`: refuse new work for a closed queue
            TaskMetrics(self.topology, port=self.settings.metrics_port, local_only=self.settings.metrics_local),
            # after_* hooks run in reverse order: FailureHistory must come last to record the
            # failure before SafeRetries copies the message for its retry.
            FailureHistory(),
        ]

    def _make_broker(self) -> dramatiq.Broker:
        if self.settings.embedded:
            from eventpipe.queues.embedded import EmbeddedBroker

            return EmbeddedBroker(self._middleware(), on_dead_letter=self._record_dead_letter)
        from eventpipe.queues.rabbitmq import make_rabbitmq_broker

        return make_rabbitmq_broker(self, self._middleware())

    def _bind_tasks(self) -> None:
        for spec in self.registry.all():
            self.actors[spec.name] = dramatiq.Actor(
                _bound(self, spec),
                broker=self.broker,
                actor_name=spec.name,
                queue_name=self.topology.queue(spec.queue),
                priority=0,
                options=self._actor_options(spec),
            )

    def _actor_options(self, spec: TaskSpec) -> dict[str, Any]:
        opts: dict[str, Any] = {"time_limit": spec.time_limit_ms, "throws": spec.throws}
        if spec.max_retries is not None:
            opts["max_retries"] = spec.max_retries
        if spec.min_backoff_ms is not None:
            opts["min_backoff"] = spec.min_backoff_ms
        if spec.max_backoff_ms is not None:
            opts["max_backoff"] = spec.max_backoff_ms
        return opts

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
        self, task_name: str, *, delay_ms: int | None = None, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> dramatiq.Message:
        """Publish one task message; returns once the broker has it (confirmed on RabbitMQ).
        ``options`` are message options for middleware (e.g. ``expires_at`` for scheduled slots)."""
        actor = self.actors.get(task_name) or self._unknown(task_name)
        return actor.send_with_options(kwargs=kwargs, delay=delay_ms, **(options or {}))

    def enqueue_many(self, task_name: str, kwargs_list: Iterable[dict[str, Any]]) -> int:
        """Publish many messages of one task; on RabbitMQ they share one confirm window."""
        actor = self.actors.get(task_name) or self._unknown(task_name)
        messages = [actor.message_with_options(kwargs=kw) for kw in kwargs_list]
        publish_many = getattr(self.broker, "enqueue_many", None)
        if publish_many is not None:
            publish_many(messages)
        else:
            for message in messages:
                self.broker.enqueue(message)
        return len(messages)

    def _unknown(self, task_name: str) -> dramatiq.Actor:
        raise UnknownTask(task_name)

    def pin_node(self, node: str) -> None:
        """Publish only to the broker node HOST:PORT (``--node``)."""
        pin = getattr(self.broker, "pin_node", None)
        if pin is None:
            raise ValueError("--node needs RabbitMQ nodes (EVENTPIPE_BROKER_URLS); the embedded broker has none")
        pin(node)

    # ops (eventpipe/ops, issue 7): nodes `eventpipe ops drain --node` flagged; the broker's
    # publishers skip them (make_rabbitmq_broker passes this as `excluded`). Cached ~2 s.
    def drained_nodes(self) -> set[str]:
        from eventpipe.ops.state import drained_nodes

        return drained_nodes(self)

    def queue_names(self) -> list[str]:
        return [self.topology.queue(q) for q in self.registry.queues()]

    def close(self) -> None:
        try:
            self.broker.close()
        finally:
            self.store.close()
            self.db.dispose()


def _bound(rt: Runtime, spec: TaskSpec) -> Any:
    def run(**kwargs: Any) -> Any:
        if spec.idempotency_key is not None:
            from eventpipe.tasks.receipts import run_once

            return run_once(rt, spec, kwargs)
        return spec.fn(rt, **kwargs)

    run.__name__ = spec.fn.__name__
    run.__qualname__ = spec.fn.__qualname__
    run.__module__ = spec.fn.__module__
    return run


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
