"""Fixtures for the scheduler tests: runtimes on SQLite or a throwaway Postgres database, a
throwaway Redis key prefix and a controllable clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventpipe.config import load_settings
from eventpipe.runtime import Runtime

from .helpers import FakeClock

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


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
        # A throwaway database: skip the per-commit WAL flush so the race tests spend their time racing.
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
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
