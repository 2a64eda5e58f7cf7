"""The metadata database goes away mid-run (a test-owned Postgres stopped with -m immediate for
15 s): ingest reports SubmitError and the client resends, tasks retry through the outage, and
every event is saved once with exact counters."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from tests.support.workers import log_tail, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]


def test_database_down_mid_run_loses_and_doubles_nothing(rabbit_env, pg_server, start_worker, monkeypatch):
    monkeypatch.setenv("EVENTPIPE_DATABASE_URL", pg_server.url)
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    from eventpipe.ingest.submit import SubmitError, submit_many
    from eventpipe.metadata.queries import ensure_project, issue_rows, totals
    from eventpipe.pipeline.demo import generate
    from eventpipe.runtime import open_runtime
    from eventpipe.tasks.buffers import flush_counters

    rt = open_runtime()
    ensure_project(rt.db, 1, "p")
    events = [e.payload for e in generate(3000, seed=21, now=time.time()) if e.project_id == 1]
    accepted: set[str] = set()
    resends = [0]

    def produce() -> None:
        for start in range(0, len(events), 20):
            while True:
                try:
                    result = submit_many(rt, 1, events[start : start + 20])
                    accepted.update(result.accepted + result.duplicates)
                    break
                except SubmitError:
                    resends[0] += 1
                    time.sleep(1)
            time.sleep(0.25)

    worker = start_worker("--processes", "1", "--threads", "4", extra_env={"EVENTPIPE_DATABASE_URL": pg_server.url})
    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: totals(rt.db)["events_stored"] > 40, 120, "work under way")
    pg_server.stop("immediate")
    time.sleep(15)
    pg_server.start()
    producer.join(300)
    assert not producer.is_alive()
    assert resends[0] > 0, "the outage was visible to the producer"
    from eventpipe.pipeline.normalize import event_id_of

    # every id accepted is one of the events sent (a malformed id is repaired into a derived one)
    valid = {event_id_of(e) for e in events if isinstance(e, dict)}
    wait_for(lambda: totals(rt.db)["events_stored"] == len(accepted), 300, "every accepted event saved")
    assert accepted <= valid
    time.sleep(2)
    assert totals(rt.db)["events_stored"] == len(accepted)
    flush_counters(rt)
    assert sum(i["count"] for i in issue_rows(rt.db)) == len(accepted)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log_tail(worker)
