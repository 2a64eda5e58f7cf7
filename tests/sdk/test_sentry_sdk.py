"""The official Python SDK (sentry-sdk) against a running `eventpipe ingest serve`: what a user
gets from `sentry_sdk.init(dsn=...)`: exceptions, messages, logging, transactions, sessions,
attachments of several MB, every compression the SDK uses, and rate limits it backs off from."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from tests.sdk.server import Server, eventpipe, ingest_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with ingest_server(tmp_path_factory.mktemp("sdk")) as srv:
        yield srv


@contextmanager
def sdk(dsn: str, **options: Any) -> Iterator[None]:
    """One initialised SDK client, flushed and closed at the end (nothing leaks into other tests)."""
    options.setdefault("default_integrations", False)
    options.setdefault("in_app_include", ["tests"])
    sentry_sdk.init(dsn=dsn, **options)
    try:
        yield
    finally:
        sentry_sdk.flush(timeout=30)
        sentry_sdk.get_client().close(timeout=30)
        sentry_sdk.init()  # no DSN: a disabled client


def issue(server: Server, title: str) -> dict[str, Any]:
    found = [i for i in server.issues() if i["title"] == title]
    assert found, f"no issue titled {title!r} in {[i['title'] for i in server.issues()]}"
    return found[0]


def charge_card() -> None:
    raise ValueError("card declined")


def test_exception_message_and_logging(server: Server) -> None:
    before = server.stored_events()
    with sdk(server.dsn, integrations=[LoggingIntegration(level=None, event_level=logging.ERROR)]):
        try:
            charge_card()
        except ValueError:
            sentry_sdk.capture_exception()
        sentry_sdk.capture_message("disk full", level="warning")
        logging.getLogger("shop.payments").error("payment %s failed", "42")
    assert server.wait_for_events(before + 3) == before + 3
    exc = issue(server, "ValueError: card declined")
    assert (exc["culprit"], exc["level"]) == ("tests.sdk.test_sentry_sdk in charge_card", "error")
    msg = issue(server, "disk full")
    assert (msg["culprit"], msg["level"]) == ("", "warning")
    log = issue(server, "payment 42 failed")
    assert log["level"] == "error"


def test_transactions_and_sessions_are_answered_and_dropped(server: Server) -> None:
    before_tx = server.metric("eventpipe_ingest_items_total", type="transaction", outcome="dropped")
    before_events = server.stored_events()
    with sdk(server.dsn, traces_sample_rate=1.0, release="shop@1.0.0"):
        with sentry_sdk.start_transaction(name="checkout", op="http.server"):
            with sentry_sdk.start_span(op="db", name="SELECT 1"):
                pass
        scope = sentry_sdk.get_isolation_scope()
        scope.start_session()
        scope.end_session()
    assert server.metric("eventpipe_ingest_items_total", type="transaction", outcome="dropped") == before_tx + 1
    sessions = sum(server.metric("eventpipe_ingest_items_total", type=t, outcome="dropped") for t in ("session", "sessions"))
    assert sessions >= 1
    assert not server.log_lines("rejected")  # nothing was answered 4xx
    assert server.stored_events() == before_events


def test_attachment_of_several_megabytes(server: Server) -> None:
    blob = os.urandom(5 * 1024 * 1024)  # five times the event size limit: attachments do not count
    before = server.stored_events()
    with sdk(server.dsn):
        with sentry_sdk.new_scope() as scope:
            scope.add_attachment(bytes=blob, filename="core.dump", content_type="application/octet-stream")
            event_id = sentry_sdk.capture_message("crash with dump")
    assert server.wait_for_events(before + 1) == before + 1
    shown = json.loads(eventpipe(server.home, "events", "show", str(server.project_id), event_id, "--json").stdout)
    assert shown["event"]["message"] == "crash with dump"
    assert [(a["filename"], a["size"]) for a in shown["attachments"]] == [("core.dump", len(blob))]
    text = eventpipe(server.home, "events", "show", str(server.project_id), event_id).stdout
    assert "core.dump" in text and str(len(blob)) in text


@pytest.mark.parametrize(("algo", "encoding"), [("br", "br"), ("gzip", "gzip"), ("none", "identity")])
def test_every_compression_the_sdk_uses(server: Server, algo: str, encoding: str) -> None:
    before_bodies = server.metric("eventpipe_ingest_bodies_total", encoding=encoding)
    before = server.stored_events()
    options: dict[str, Any] = {"transport_compression_algo": algo}
    with sdk(server.dsn, _experiments=options, send_client_reports=False):
        sentry_sdk.capture_message(f"compressed with {algo}")
    assert server.wait_for_events(before + 1) == before + 1
    assert server.metric("eventpipe_ingest_bodies_total", encoding=encoding) == before_bodies + 1
    assert issue(server, f"compressed with {algo}")["count"] >= 0


def test_rate_limit_and_backoff(tmp_path: Path) -> None:
    # 2 events of burst, then (nearly) nothing: the SDK must stop sending after the first 429
    with ingest_server(tmp_path, rate=0.001, burst=2) as srv:
        with sdk(srv.dsn):
            for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"):
                sentry_sdk.capture_message(f"burst {word}")
        assert srv.wait_for_events(2) == 2
        assert srv.metric("eventpipe_ingest_rejected_total", reason="rate_limited", status="429") == 1
        lines = srv.log_lines("rejected 429 rate_limited")
        assert len(lines) == 1 and f"project={srv.project_id}" in lines[0] and "client=127.0.0.1" in lines[0]
        assert sorted(i["title"] for i in srv.issues()) == ["burst alpha", "burst bravo"]
