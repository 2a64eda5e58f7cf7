"""Shared fixtures: an embedded runtime in a temp folder, and a throwaway Postgres database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workers import start_worker  # noqa: E402,F401  (fixture for every test folder)

PG_ADMIN_URL = os.environ.get("EVENTPIPE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's EVENTPIPE_* variables or ./eventpipe.toml."""
    for key in list(os.environ):
        if key.startswith("EVENTPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    from eventpipe.config import get_settings

    get_settings.cache_clear()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh Postgres database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"ep_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Postgres at {PG_ADMIN_URL} is needed for this test: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator:
    """Build runtimes with settings overrides; all are closed at the end."""
    from eventpipe.config import load_settings
    from eventpipe.runtime import Runtime

    made = []

    def make(**overrides: object):
        overrides.setdefault("home", tmp_path / ".eventpipe")
        rt = Runtime(load_settings(**overrides))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()
