"""The reference system's public sample events (tests/data/samples, see its README), each sent
through `eventpipe send` (a subprocess) and through HTTP to a running `ingest serve`: every one is
accepted and grouped with the title, culprit and level the reference would give."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sdk.server import Server, eventpipe, ingest_server

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"

# sample -> (title, culprit, level), derived from the reference's rules:
# title (eventtypes): error events "{type}: {first line of value, 100 chars}" of the LAST exception,
#   "<unknown>" when exception values were sent but none is usable; other events the first line of
#   logentry.formatted/message, else "<unlabeled event>".
# culprit (culprit.generate_culprit): the client's culprit or transaction if set; else the last
#   stacktrace (exceptions', or the top-level one): its most recent in-app frame, else its top
#   frame; "module in function", "function(file)" for javascript/node frames, "" for a frame with
#   neither module nor filename; else the request URL; else "".
# level: the event's level, "error" when absent.
EXPECTED: dict[str, tuple[str, str, str]] = {
    "python.json": ("<unlabeled event>", "raven.scripts.runner in main", "error"),
    "javascript.json": ("TypeError: Object [object Object] has no method 'updateFrom'", "views.js in updateMember", "error"),
    "java.json": ("ApiException: Authentication failed, token expired!", "io.sentry.example.ApiRequest in perform", "error"),
    "php.json": ("Exception: This is a test exception sent from the Raven CLI.", "raven in raven_cli_test", "error"),
    "elixir.json": ("exit: ** (exit) :badarith", "Elixir.HelloHTTP2.WWW in HelloHTTP2.WWW.handle_request/2", "error"),
    "unity.json": ("DivideByZeroException: Attempted to divide by zero.", "", "error"),
    "cordova.json": ("Error: Sentry Initialized", "?(app:///index.js)", "error"),
    "empty-exception.json": ("<unknown>", "", "error"),
    "empty-stacktrace.json": ("<unlabeled event>", "", "error"),
}


def test_every_sample_file_has_an_expectation() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with ingest_server(tmp_path_factory.mktemp("samples")) as srv:
        yield srv


def observed(server: Server, project_id: int) -> Counter[tuple[str, str, str]]:
    rows = json.loads(eventpipe(server.home, "issues", "list", "--project", str(project_id), "--json").stdout)
    return Counter((r["title"], r["culprit"], r["level"]) for r in rows)


def test_samples_over_http(server: Server) -> None:
    for name in EXPECTED:
        r = httpx.post(
            f"{server.url}/api/{server.project_id}/store/",
            content=(SAMPLES / name).read_bytes(),
            headers={"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={server.key}", "Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 200, (name, r.text)
    assert server.wait_for_events(len(EXPECTED)) == len(EXPECTED)
    assert observed(server, server.project_id) == Counter(EXPECTED.values())


def test_samples_through_send(server: Server) -> None:
    eventpipe(server.home, "projects", "add", "2", "send-samples")
    files = [str(SAMPLES / name) for name in EXPECTED]
    out = json.loads(eventpipe(server.home, "send", "--project", "2", "--json", *files).stdout)
    assert out["accepted"] == len(EXPECTED)
    assert all(not f["rejected"] for f in out["files"])
    # the running server's in-process workers process them (same embedded home)
    deadline_count = Server(server.home, server.port, 2, server.key, server.log).wait_for_events(len(EXPECTED))
    assert deadline_count == len(EXPECTED)
    assert observed(server, 2) == Counter(EXPECTED.values())
