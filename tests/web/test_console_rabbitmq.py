"""The console against the machine's RabbitMQ (a unique queue prefix) with Postgres metadata and a
real `eventpipe worker`: pausing a queue in the browser stops the worker taking it (its consumer
goes away and new messages wait), resuming lets them through, and a dead letter is shown with its
reason and traceback, then replayed to its work queue and done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import PG_ADMIN_URL
from tests.support.rabbit import MACHINE_AMQP, delete_queues
from tests.support.web import (
    base_env,
    click,
    screenshot_path,
    sign_in,
    start_console,
    stop_console,
    wait_until,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
QUEUE = "webtest"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"ep_web_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Iterator[dict[str, Any]]:
    """`eventpipe web` and one `eventpipe worker` on the `webtest` queue, plus a runtime for the test."""
    from eventpipe.config import load_settings
    from eventpipe.runtime import Runtime

    cwd = tmp_path_factory.mktemp("web-rabbit")
    prefix = f"w{uuid.uuid4().hex[:8]}."
    settings = {"broker_url": MACHINE_AMQP, "queue_prefix": prefix, "home": str(cwd / ".eventpipe"),
                "database_url": pg_database, "task_modules": "tests.web.web_tasks"}
    env = base_env(cwd / ".eventpipe", **{f"EVENTPIPE_{k.upper()}": v for k, v in settings.items()},
                   EVENTPIPE_MIN_BACKOFF_MS="200", EVENTPIPE_MAX_BACKOFF_MS="1000", EVENTPIPE_SHUTDOWN_GRACE_SECONDS="5")
    rt = Runtime(load_settings(**{**settings, "task_modules": [settings["task_modules"]]}))
    console = start_console(env, cwd, {"alice": "admin"})
    with open(cwd / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "eventpipe.cli", "worker", "--queues", QUEUE,
                                   "--processes", "1", "--threads", "2"], env=env, cwd=cwd, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield {"rt": rt, "console": console, "worker": worker, "log": cwd / "worker.log"}
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        stop_console(console)
        registry_queues = rt.registry.queues()
        rt.close()
        delete_queues(MACHINE_AMQP, prefix, registry_queues)


def _done(rt: Any, keys: list[str]) -> int:
    return sum(rt.store.get(f"done/{k}") is not None for k in keys)


def _cell(browser: Any, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f"#queues tr.queue[data-queue='{QUEUE}'] td.{css}").text)


def test_pause_in_the_browser_stops_the_worker_taking_the_queue(browser: Any, deployment: dict[str, Any]) -> None:
    rt, console = deployment["rt"], deployment["console"]
    warm = [f"w{i}" for i in range(3)]
    for k in warm:
        rt.enqueue("webtest.record", key=k)
    wait_until(lambda: _done(rt, warm) == 3, 180, "the worker to run the warm-up tasks: " + deployment["log"].read_text()[-2000:])

    sign_in(browser, console, "alice")
    browser.get(console.url + "/workers")  # the live worker, from its heartbeat
    workers = browser.find_elements(By.CSS_SELECTOR, "#workers tr.worker")
    assert [w.get_attribute("data-queues") for w in workers] == [QUEUE]
    assert int(workers[0].find_element(By.CSS_SELECTOR, "td.tasks-done").text) >= 0
    browser.get(console.url + "/queues")
    wait_until(lambda: _cell(browser, "consumers") not in ("0", "-"), 60, "the worker's consumer on the queues page")

    click(browser, f"#pauses button.pause[data-queue='{QUEUE}']")
    wait_until(lambda: "paused" in browser.find_element(By.CSS_SELECTOR, ".flash").text, 30, "the pause confirmation")
    wait_until(lambda: _cell(browser, "consumers") == "0", 60, "the worker's consumer gone (page refresh)")
    keys = [f"p{i}" for i in range(5)]
    for k in keys:
        rt.enqueue("webtest.record", key=k)
    wait_until(lambda: _cell(browser, "ready") == "5", 60, "5 ready messages shown on the paused queue")
    browser.refresh()
    assert _cell(browser, "ready") == "5" and _done(rt, keys) == 0  # still waiting: nobody takes them

    click(browser, f"#pauses button.resume[data-queue='{QUEUE}']")
    wait_until(lambda: _done(rt, keys) == 5, 90, "the worker taking the queue again after resume")
    wait_until(lambda: _cell(browser, "ready") == "0", 60, "the queue shown empty again")


def test_dead_letter_shown_then_replayed(browser: Any, deployment: dict[str, Any], tmp_path: Path) -> None:
    rt, console = deployment["rt"], deployment["console"]
    message_id = rt.enqueue("webtest.fixable", key="d1")
    sign_in(browser, console, "alice")
    browser.get(console.url + "/queues")
    row = f"#dead-letters tr.dead-letter[data-message-id='{message_id}']"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, row), 90, "the dead letter on the queues page")
    browser.save_screenshot(str(screenshot_path(tmp_path, "console-queues.png")))

    click(browser, f"{row} a.show-dead-letter")
    wait_until(lambda: browser.find_elements(By.ID, "dl-reason"), 30, "the dead letter page")
    assert "dependency missing" in browser.find_element(By.ID, "dl-reason").text
    assert "PermanentError" in browser.find_element(By.ID, "dl-traceback").text

    rt.store.put("fixed", b"1")  # the operator fixes the cause, then replays
    browser.find_element(By.ID, "replay").click()
    wait_until(lambda: "replayed 1 dead letter" in browser.find_element(By.CSS_SELECTOR, ".flash").text, 60, "the replay confirmation")
    wait_until(lambda: _done(rt, ["d1"]) == 1, 90, "the replayed task done by the worker")
    browser.get(console.url + "/queues")
    assert not browser.find_elements(By.CSS_SELECTOR, row)
    browser.get(console.url + "/audit")
    assert f"alice dlq.replay dead_letter:{message_id} ok" in browser.find_element(By.ID, "audit").text


def test_drain_node_asks_for_confirmation_then_flags_it(browser: Any, deployment: dict[str, Any]) -> None:
    """Last in this module: the machine's only node is drained (in this test's database only)."""
    console = deployment["console"]
    node = "127.0.0.1:5672"
    sign_in(browser, console, "alice")
    browser.get(console.url + "/queues")
    click(browser, f"#nodes tr[data-node='{node}'] a.button")
    wait_until(lambda: browser.find_elements(By.ID, "confirm-drain"), 30, "the confirmation page")
    assert f"Drain node {node}?" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "confirm-drain").click()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f"#nodes tr[data-node='{node}'] .badge.drained"), 30, "node drained")
    click(browser, f"#nodes tr[data-node='{node}'] button")
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, f"#nodes tr[data-node='{node}'] .badge.drained"), 30, "node undrained")
