"""Fixtures for the scheduler tests: runtimes on SQLite or a throwaway Postgres database, a
throwaway Redis key prefix, a controllable clock, and helpers that read what was enqueued."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from eventpipe.config import load_settings
from eventpipe.runtime import Runtime
from eventpipe.tasks.api import task

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
TEST_TASK = "schedtest.tick"
TEST_QUEUE = "schedtest"
T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)

RAN: list[dict[str, Any]] = []
_RAN_LOCK = threading.Lock()


@task(TEST_TASK, queue=TEST_QUEUE, max_retries=0)
def schedtest_tick(rt: Runtime, **kwargs: Any) -> None:
    """Test task: remembers that it ran."""
    with _RAN_LOCK:
        RAN.append(kwargs)


class FakeClock:
    """A controllable clock: returns ``now`` until moved."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, t: datetime) -> None:
        self.now = t

    def advance(self, seconds: float) -> datetime:
        self.now = self.now + timedelta(seconds=seconds)
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


def queued_messages(rt: Runtime, queue: str = TEST_QUEUE) -> list[dramatiq.Message]:
    """Messages waiting in an embedded-broker queue (not consumed)."""
    q = rt.broker.queues.get(rt.topology.queue(queue))
    if q is None:
        return []
    return [dramatiq.Message.decode(raw) for raw in list(q.queue)]


def slot_counts(rts: list[Runtime]) -> Counter[tuple[str, str]]:
    """(job, slot iso) -> number of messages enqueued, over every runtime's broker."""
    counts: Counter[tuple[str, str]] = Counter()
    for rt in rts:
        for m in queued_messages(rt):
            counts[(m.options["schedule_job"], m.options["schedule_slot"])] += 1
    return counts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_rt(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Runtimes in embedded mode sharing one home (so one SQLite file) unless given a database URL."""
    made: list[Runtime] = []

    def make(database_url: str | None = None) -> Runtime:
        overrides: dict[str, Any] = {"home": tmp_path, "redis_url": None}
        if database_url:
            overrides["database_url"] = database_url
        rt = Runtime(load_settings(**overrides))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for this test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"ep_sched_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Postgres at {PG_ADMIN_URL}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> Iterator[tuple[Any, str]]:
    """A Redis client and a key prefix unique to this test; every key under it is deleted after."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"eptest-{uuid.uuid4().hex[:10]}:"
    try:
        yield client, prefix
    finally:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
