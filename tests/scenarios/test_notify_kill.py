"""A worker killed with -9 in the middle of sending a digest (RabbitMQ + Postgres + real SMTP):
no email is lost and none is sent twice. The email whose SMTP conversation was cut is the
documented at-most-once step: the server has it, its row stays ``sending`` and is never retried."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

from sqlalchemy import select

from tests.support.workers import children_of, log_tail, wait_for

RECIPIENTS = ["a@example.com", "b@example.com", "c@example.com"]


def sender_of(supervisor: int, smtp_port: int) -> int:
    """The worker process holding the SMTP connection."""
    import psutil

    for pid in children_of(supervisor):
        try:
            if any(c.raddr and c.raddr.port == smtp_port for c in psutil.Process(pid).net_connections(kind="tcp")):
                return pid
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no worker process of {supervisor} is connected to the SMTP server")


def test_worker_killed_mid_digest_loses_and_doubles_nothing(rabbit_env, start_worker, pg_url, smtp_server, monkeypatch):
    env = {"EVENTPIPE_DATABASE_URL": pg_url, "EVENTPIPE_SMTP_URL": smtp_server.url,
           "EVENTPIPE_DIGEST_DELAY_SECONDS": "1", "EVENTPIPE_DIGEST_MAX_DELAY_SECONDS": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from eventpipe.config import get_settings

    get_settings.cache_clear()
    from eventpipe.metadata.models import NotificationSend
    from eventpipe.metadata.queries import ensure_project
    from eventpipe.notify.rules import add_rule
    from eventpipe.runtime import open_runtime
    from eventpipe.tasks.notify import evaluate

    rt = open_runtime()
    ensure_project(rt.db, 1, "api")
    add_rule(rt.db, 1, "first_seen", emails=RECIPIENTS)

    release = threading.Event()
    first_data = threading.Event()

    def hold_first(msg) -> None:  # the server has the message; the sender waits for "250"
        if not first_data.is_set():
            first_data.set()
            release.wait(120)

    smtp_server.on_data = hold_first
    items = [{"project_id": 1, "issue_id": i, "event_id": f"{i:032x}", "kinds": ["first_seen"], "level": "error"} for i in (1, 2, 3)]
    assert evaluate(rt, items) == 3  # publishes notify.deliver_digest: the project was idle

    worker = start_worker("--processes", "1", "--threads", "1", "--prefetch", "10", extra_env=env)
    assert first_data.wait(180), log_tail(worker)
    victim = sender_of(worker.pid, smtp_server.port)
    os.kill(victim, signal.SIGKILL)  # mid-send: the SMTP server got DATA, the worker never saw 250
    release.set()

    def statuses() -> Counter[str]:
        with rt.db.session() as s:
            return Counter(r.status for r in s.scalars(select(NotificationSend)))

    # the supervisor replaces the child; RabbitMQ redelivers the unacked sends
    wait_for(lambda: statuses().get("pending", 0) == 0 and sum(statuses().values()) == 3 and len(smtp_server.snapshot()) >= 3,
             180, f"the other emails sent after the kill ({log_tail(worker, 800)})")
    with rt.db.session() as s:
        rows = {r.key: r.status for r in s.scalars(select(NotificationSend))}
    keys = smtp_server.keys()
    assert sorted(str(m["To"]) for m in smtp_server.snapshot()) == RECIPIENTS  # none lost, none doubled
    assert sorted(keys) == sorted(rows) and len(set(keys)) == 3
    assert sorted(rows.values()) == ["sending", "sent", "sent"]  # the cut one: at-most-once, not retried
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0
