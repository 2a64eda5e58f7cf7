"""Every built-in backend against the shared conformance suite, each on a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventpipe.kvstore import KeyValueStore, open_raw_store
from eventpipe.testing.conformance import KeyValueStoreConformance
from eventpipe.testing.ports import free_port
from eventpipe.testing.servers import RedisClusterServers, SeaweedFS


class TestMemory(KeyValueStoreConformance):
    def make_store(self) -> KeyValueStore:
        return open_raw_store("memory://")


class TestFilesystem(KeyValueStoreConformance):
    @pytest.fixture(autouse=True)
    def _root(self, tmp_path: Path) -> None:
        self.root = tmp_path / "kv"

    def make_store(self) -> KeyValueStore:
        return open_raw_store(f"file://{self.root}")


class TestSQLite(KeyValueStoreConformance):
    @pytest.fixture(autouse=True)
    def _path(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bodies.sqlite3"

    def make_store(self) -> KeyValueStore:
        return open_raw_store(f"sqlite://{self.path}")

    def make_unreachable_store(self) -> KeyValueStore | None:
        # a file SQLite cannot open (its folder is a file) is the local form of "unreachable"
        blocker = self.path.parent / "not-a-folder"
        blocker.write_bytes(b"")
        return open_raw_store(f"sqlite://{blocker}/x.sqlite3")


@pytest.mark.postgres
class TestPostgres(KeyValueStoreConformance):
    @pytest.fixture(autouse=True)
    def _url(self, kv_pg_url: str) -> None:
        self.url = kv_pg_url

    def make_store(self) -> KeyValueStore:
        return open_raw_store(self.url)

    def make_unreachable_store(self) -> KeyValueStore | None:
        return open_raw_store(f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/test?connect_timeout=2")


@pytest.mark.redis
class TestRedis(KeyValueStoreConformance):
    @pytest.fixture(autouse=True)
    def _url(self, kv_redis_url: str) -> None:
        self.url = kv_redis_url

    def make_store(self) -> KeyValueStore:
        return open_raw_store(self.url)

    def make_unreachable_store(self) -> KeyValueStore | None:
        return open_raw_store(f"redis://:s3cret@127.0.0.1:{free_port()}/0?timeout=1")


@pytest.mark.slow
class TestRedisCluster(KeyValueStoreConformance):
    @pytest.fixture(autouse=True)
    def _url(self, redis_cluster: RedisClusterServers) -> None:
        self.url = redis_cluster.url + "?prefix=conf:"

    def make_store(self) -> KeyValueStore:
        return open_raw_store(self.url)

    def make_unreachable_store(self) -> KeyValueStore | None:
        return open_raw_store(f"redis+cluster://:s3cret@127.0.0.1:{free_port()}?timeout=1")


@pytest.mark.slow
class TestRedisClusterWait(KeyValueStoreConformance):
    """The same cluster with ``wait=1``: every write acknowledged by a replica."""

    @pytest.fixture(autouse=True)
    def _url(self, redis_cluster: RedisClusterServers) -> None:
        self.url = redis_cluster.url + "?prefix=confw:&wait=1"

    def make_store(self) -> KeyValueStore:
        return open_raw_store(self.url)


@pytest.mark.slow
class TestS3Obstore(KeyValueStoreConformance):
    """SeaweedFS through the default client (obstore for get/put, boto3 for the rest)."""

    @pytest.fixture(autouse=True)
    def _url(self, seaweed: SeaweedFS) -> None:
        self.url = seaweed.url("conformance-obstore")

    def make_store(self) -> KeyValueStore:
        store = open_raw_store(self.url)
        assert getattr(store, "client_name", None) == "obstore"
        return store

    def make_unreachable_store(self) -> KeyValueStore | None:
        return open_raw_store(f"s3://key:s3cret@bucket-x?endpoint_url=http://127.0.0.1:{free_port()}&timeout=1")


@pytest.mark.slow
class TestS3Boto3(KeyValueStoreConformance):
    """SeaweedFS through boto3 only (``client=boto3``), with a key prefix."""

    large_batch = 1001

    @pytest.fixture(autouse=True)
    def _url(self, seaweed: SeaweedFS) -> None:
        self.url = seaweed.url("conformance-boto3", client="boto3", prefix="bodies/")

    def make_store(self) -> KeyValueStore:
        return open_raw_store(self.url)
