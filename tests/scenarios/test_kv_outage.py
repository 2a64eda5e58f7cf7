"""The body store goes away for 30 s mid-run (a test-owned Redis with an fsync'd append-only
file, SIGKILLed and restarted): ingest keeps accepting (bodies ride in events.store_blob), tasks
that read or write bodies retry through the outage, and nothing is lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from eventpipe.testing.ports import free_port
from tests.support.workers import log_tail, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


class RedisServer:
    def __init__(self, folder) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is needed (Debian package redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: _ping(redis.Redis(port=self.port, socket_timeout=1)), 30, "redis to start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_body_store_down_for_30_s_loses_nothing(rabbit_env, redis_server, start_worker, monkeypatch):
    monkeypatch.setenv("EVENTPIPE_KV_URL", f"redis://127.0.0.1:{redis_server.port}/0")
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    from eventpipe.ingest.submit import SubmitResult, submit_many
    from eventpipe.metadata.queries import ensure_project, totals
    from eventpipe.pipeline.demo import generate
    from eventpipe.runtime import open_runtime

    rt = open_runtime()
    ensure_project(rt.db, 1, "p")
    events = [e.payload for e in generate(1500, seed=9, now=time.time()) if e.project_id == 1]
    half = len(events) // 2
    result = SubmitResult()
    result.merge(submit_many(rt, 1, events[:half]))
    worker = start_worker("--processes", "1", "--threads", "4", extra_env={"EVENTPIPE_KV_URL": f"redis://127.0.0.1:{redis_server.port}/0"})
    wait_for(lambda: totals(rt.db)["events_stored"] > 50, 120, "work under way")
    redis_server.kill()
    during = submit_many(rt, 1, events[half:])  # accepted while the store is down
    result.merge(during)
    assert during.deferred_bodies == len(during.accepted) > 0
    time.sleep(30)
    redis_server.start()
    accepted = set(result.accepted)
    wait_for(lambda: totals(rt.db)["events_stored"] == len(accepted), 300, f"all {len(accepted)} events saved\n")
    from sqlalchemy import select

    from eventpipe.metadata.models import Event
    from eventpipe.queues.nodes import queue_depth
    from tests.support.rabbit import MACHINE_AMQP

    with rt.db.session() as s:
        keys = list(s.scalars(select(Event.kv_key)))
    assert len(rt.store.get_many(keys)) == len(accepted), "every body is in the store"
    for q in ("events", "events.store", "events.save", "events.post"):
        assert queue_depth(MACHINE_AMQP, rt.topology.dead_letter(q)) == 0, f"nothing dead-lettered in {q}"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log_tail(worker)
