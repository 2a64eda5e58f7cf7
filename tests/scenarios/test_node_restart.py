"""A test-owned RabbitMQ node killed (-9) and restarted while events are submitted and worked:
publishers and consumers reconnect by themselves, nothing accepted is lost, nothing is doubled."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support.workers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def test_node_restart_mid_run_loses_nothing(rabbit_node, tmp_path, monkeypatch, start_worker):
    monkeypatch.setenv("EVENTPIPE_BROKER_URL", rabbit_node.amqp_url)
    monkeypatch.setenv("EVENTPIPE_HOME", str(tmp_path / ".eventpipe"))
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    from eventpipe.ingest.submit import SubmitError, submit_many
    from eventpipe.metadata.queries import ensure_project, issue_rows, totals
    from eventpipe.pipeline.demo import generate
    from eventpipe.runtime import open_runtime, reset_runtime
    from eventpipe.tasks.buffers import flush_counters

    rt = open_runtime()
    ensure_project(rt.db, 1, "p")
    events = [e.payload for e in generate(4000, seed=5, now=time.time()) if e.project_id == 1]
    accepted: list[str] = []
    resends = [0]

    def produce() -> None:
        for start in range(0, len(events), 100):
            chunk = events[start : start + 100]
            while True:
                try:
                    accepted.extend(submit_many(rt, 1, chunk).accepted)
                    break
                except SubmitError:
                    resends[0] += 1  # what a client does: resend the same events
                    time.sleep(0.5)
            time.sleep(0.02)

    worker = start_worker("--processes", "1", "--threads", "4")
    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: totals(rt.db)["events_stored"] > 200, 120, "work to be under way")
    rabbit_node.kill()
    time.sleep(2)
    rabbit_node.start()
    producer.join(timeout=300)
    assert not producer.is_alive()
    wait_for(lambda: totals(rt.db)["events_stored"] == len(set(accepted)), 240, "every accepted event saved")
    time.sleep(3)  # replayed messages, if any, arrive and change nothing
    assert totals(rt.db)["events_stored"] == len(set(accepted))
    flush_counters(rt)
    assert sum(i["count"] for i in issue_rows(rt.db)) == len(set(accepted))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
    reset_runtime()
