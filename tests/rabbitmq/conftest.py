"""RabbitMQ test helpers: a unique queue prefix per test, worker subprocesses, cleanup."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

MACHINE_AMQP = os.environ.get("EVENTPIPE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
REPO = Path(__file__).resolve().parents[2]


def delete_queues(url: str, prefix: str, logical: list[str]) -> None:
    from eventpipe.queues.declare import on_fresh_channel
    from eventpipe.queues.topology import DELAY_BUCKETS_MS, Topology

    topo = Topology(prefix)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for q in logical:
            for name in [topo.queue(q), topo.dead_letter(q)] + [topo.delay(q, b) for b in DELAY_BUCKETS_MS]:
                on_fresh_channel(conn, lambda ch, name=name: ch.queue_delete(name))
    finally:
        conn.close()


@pytest.fixture
def rabbit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a runtime and its worker subprocesses on the machine's RabbitMQ."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        "EVENTPIPE_BROKER_URL": MACHINE_AMQP,
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_TASK_MODULES": "tests.support.tasks",
        "EVENTPIPE_MIN_BACKOFF_MS": "500",
        "EVENTPIPE_MAX_BACKOFF_MS": "2000",
        "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "20",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(REPO))
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    yield env
    from eventpipe.runtime import reset_runtime

    reset_runtime()
    from eventpipe.tasks.api import registry

    delete_queues(MACHINE_AMQP, prefix, registry.queues())  # every declared queue, whatever is added later


from tests.support.workers import children_of, log_tail, wait_for  # noqa: E402,F401  (re-exported)
