"""The console over the embedded default (SQLite metadata and bodies), in a real browser: sign in,
the demo's issues, an issue's frames, context lines and breadcrumbs, resolving it, and the
security checks (no session, no CSRF token, a viewer acting, repeated failed sign-ins)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.support.web import (
    Console,
    base_env,
    click,
    eventpipe,
    post_from_page,
    screenshot_path,
    sign_in,
    start_console,
    stop_console,
    wait_until,
)

EVENT = {
    "event_id": "0123456789abcdef0123456789abcdef",
    "level": "error",
    "platform": "python",
    "exception": {"values": [{
        "type": "InventoryError",
        "value": "sku 42 is out of stock",
        "stacktrace": {"frames": [
            {"module": "django.core.handlers.base", "function": "_get_response",
             "filename": "/usr/lib/python3/site-packages/django/core/handlers/base.py", "lineno": 181},
            {"module": "shop.checkout", "function": "reserve_stock", "filename": "shop/checkout.py", "lineno": 57,
             "in_app": True, "context_line": "    raise InventoryError(f'sku {sku} is out of stock')"},
        ]},
    }]},
    "breadcrumbs": [{"category": "http", "level": "info", "message": "GET /cart/checkout 200"},
                    {"category": "db", "level": "info", "message": "SELECT stock FROM skus WHERE id = 42"}],
    "user": {"id": "u-77", "email": "buyer@example.com"},
    "request": {"url": "https://shop.example.com/cart/checkout", "method": "POST"},
    "tags": {"region": "eu"},
}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    cwd = tmp_path_factory.mktemp("web-embedded")
    env = base_env(cwd / ".eventpipe")
    eventpipe(env, cwd, "demo", "--events", "200", "--json")
    (cwd / "event.json").write_text(json.dumps(EVENT))
    eventpipe(env, cwd, "send", "--project", "1", str(cwd / "event.json"), "--json")
    c = start_console(env, cwd, {"alice": "admin", "victor": "viewer"})
    c.issues = c.cli("issues", "list", "--project", "1")  # read once: each command takes seconds on a busy machine
    yield c
    stop_console(c)


def _issue_id(console: Console, title_start: str) -> int:
    return next(r["id"] for r in console.issues if r["title"].startswith(title_start))


def test_without_a_session_every_page_redirects_to_login(browser: Any, console: Console) -> None:
    browser.delete_all_cookies()
    for path in ("/issues", "/queues", "/workers", "/issues/1"):
        browser.get(console.url + path)
        assert "/login" in browser.current_url, path
        assert browser.find_element(By.ID, "sign-in")
    browser.get(console.url + "/static/console.css")  # static files are public
    assert "--accent" in browser.page_source


def test_sign_in_shows_the_demo_issues(browser: Any, console: Console, tmp_path: Path) -> None:
    sign_in(browser, console, "alice")
    wait_until(lambda: "/issues" in browser.current_url, 30, "the issues page after sign-in")
    browser.get(console.url + "/issues?project=1&status=all&sort=count")
    shown = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#issues a.issue-title")]
    expected = [r["title"] for r in sorted(console.issues,
                                           key=lambda r: (-r["count"], r["id"]))]
    assert shown and shown == expected[: len(shown)]
    assert browser.find_elements(By.CSS_SELECTOR, "#issues svg.spark rect")  # 24 h sparklines
    browser.save_screenshot(str(screenshot_path(tmp_path, "console-issues.png")))
    # filter by text narrows the list to matching titles
    browser.get(console.url + "/issues?project=1&status=all&q=out+of+stock")
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#issues a.issue-title")]
    assert titles == ["InventoryError: sku 42 is out of stock"]


def test_issue_detail_shows_frames_context_and_breadcrumbs(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    issue_id = _issue_id(console, "InventoryError")
    browser.get(f"{console.url}/issues/{issue_id}")
    in_app = browser.find_elements(By.CSS_SELECTOR, "#exceptions .frame.in-app")
    system = browser.find_elements(By.CSS_SELECTOR, "#exceptions .frame.system")
    assert [f.find_element(By.CSS_SELECTOR, ".function").text for f in in_app] == ["reserve_stock"]
    assert [f.find_element(By.CSS_SELECTOR, ".function").text for f in system] == ["_get_response"]
    assert "raise InventoryError" in in_app[0].find_element(By.CSS_SELECTOR, "pre.context").text
    crumbs = browser.find_element(By.ID, "breadcrumbs").text
    assert "GET /cart/checkout 200" in crumbs and "SELECT stock" in crumbs
    assert "buyer@example.com" in browser.find_element(By.ID, "event-user").text
    assert "https://shop.example.com/cart/checkout" in browser.find_element(By.ID, "event-request").text
    assert browser.find_element(By.ID, "event-id").text == EVENT["event_id"]


def test_demo_issue_pages_through_its_events(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    top = max(console.issues, key=lambda r: r["count"])
    browser.get(f"{console.url}/issues/{top['id']}")
    first = browser.find_element(By.ID, "event-id").text
    assert browser.find_elements(By.CSS_SELECTOR, "#exceptions .frame") or "Message" in browser.page_source
    browser.find_element(By.ID, "prev-event").click()
    wait_until(lambda: browser.find_element(By.ID, "event-id").text != first, 15, "the older event")
    browser.find_element(By.ID, "next-event").click()
    wait_until(lambda: browser.find_element(By.ID, "event-id").text == first, 15, "back to the latest event")


def test_resolve_changes_the_status_and_is_recorded(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    issue_id = _issue_id(console, "InventoryError")
    browser.get(f"{console.url}/issues/{issue_id}")
    assert browser.find_element(By.ID, "issue-status").text == "unresolved"
    browser.find_element(By.ID, "action-resolved").click()
    wait_until(lambda: browser.find_element(By.ID, "issue-status").text == "resolved", 15, "status resolved")
    activity = browser.find_element(By.ID, "activity").text
    assert "resolved" in activity and "alice" in activity
    row = next(r for r in console.cli("issues", "list", "--project", "1") if r["id"] == issue_id)
    assert row["status"] == "resolved"
    browser.find_element(By.ID, "action-unresolved").click()
    wait_until(lambda: browser.find_element(By.ID, "issue-status").text == "unresolved", 15, "status unresolved")


def test_post_without_csrf_token_is_refused(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    issue_id = _issue_id(console, "InventoryError")
    browser.get(f"{console.url}/issues/{issue_id}")
    status, body = post_from_page(browser, f"/issues/{issue_id}/status", {"status": "ignored"})
    assert status == 403 and "CSRF" in body
    status, body = post_from_page(browser, f"/issues/{issue_id}/status", {"status": "ignored", "csrf": "forged"})
    assert status == 403 and "CSRF" in body
    browser.refresh()
    assert browser.find_element(By.ID, "issue-status").text == "unresolved"


def test_a_viewer_sees_but_cannot_act(browser: Any, console: Console) -> None:
    sign_in(browser, console, "victor")
    issue_id = _issue_id(console, "InventoryError")
    browser.get(f"{console.url}/issues/{issue_id}")
    assert browser.find_elements(By.CSS_SELECTOR, "#exceptions .frame.in-app")
    assert not browser.find_elements(By.ID, "action-resolved")  # no buttons for viewers
    token = browser.find_element(By.CSS_SELECTOR, "header input[name=csrf]").get_attribute("value")
    status, body = post_from_page(browser, f"/issues/{issue_id}/status", {"status": "resolved", "csrf": token})
    assert status == 403 and "viewers cannot act" in body
    browser.get(console.url + "/queues")
    assert not browser.find_elements(By.CSS_SELECTOR, "#pauses button")
    status, _ = post_from_page(browser, "/queues/pause", {"queue": "events", "csrf": token})
    assert status == 403
    browser.get(f"{console.url}/issues/{issue_id}")
    assert browser.find_element(By.ID, "issue-status").text == "unresolved"
    sign_in(browser, console, "alice")
    browser.get(console.url + "/audit")
    audit = browser.find_element(By.ID, "audit").text
    assert "victor issue.resolved issue:%d refused" % issue_id in audit


def test_embedded_queues_page_pause_and_resume(browser: Any, console: Console, tmp_path: Path) -> None:
    sign_in(browser, console, "alice")
    browser.get(console.url + "/queues")
    rows = browser.find_elements(By.CSS_SELECTOR, "#queues tr.queue")
    assert {r.get_attribute("data-node") for r in rows} == {"embedded"}
    assert "events.save" in {r.get_attribute("data-queue") for r in rows}
    click(browser, "#pauses button.pause[data-queue='rollups']")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#pauses button.resume[data-queue='rollups']"), 15, "rollups paused")
    assert console.cli("ops", "paused")[0]["queue"] == "rollups"
    click(browser, "#pauses button.resume[data-queue='rollups']")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#pauses button.pause[data-queue='rollups']"), 15, "rollups resumed")
    assert console.cli("ops", "paused") == []


def test_schedule_pause_run_now_and_resume(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    browser.get(console.url + "/workers")
    row = "#jobs tr[data-job='rollups.hourly']"
    click(browser, f"{row} button.pause")
    wait_until(lambda: "paused" in browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text, 15, "job paused")
    assert "web:alice" in browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text
    click(browser, f"{row} button.run")
    wait_until(lambda: "published now" in browser.find_element(By.CSS_SELECTOR, ".flash").text, 60, "run now")
    assert browser.find_element(By.CSS_SELECTOR, f"{row} td.last-run").text.endswith("ago")
    job = next(j for j in console.cli("schedules", "list") if j["job"] == "rollups.hourly")
    assert job["paused"] is True and job["last_run"] is not None
    click(browser, f"{row} button.resume")
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text == "active", 15, "job resumed")


def test_merge_then_unmerge_in_the_browser(browser: Any, console: Console) -> None:
    sign_in(browser, console, "alice")
    small = sorted((r for r in console.issues if not r["title"].startswith("InventoryError")), key=lambda r: (r["count"], r["id"]))
    source, target = small[0], small[1]
    browser.get(f"{console.url}/issues/{source['id']}")
    source_hashes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#hashes code")]
    browser.find_element(By.NAME, "into").send_keys(str(target["id"]))
    browser.find_element(By.ID, "action-merge").click()
    wait_until(lambda: browser.current_url.endswith(f"/issues/{target['id']}"), 60, "the surviving issue's page")
    hashes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#hashes code")]
    assert set(source_hashes) <= set(hashes) and len(hashes) > len(source_hashes)
    assert "merge" in browser.find_element(By.ID, "activity").text and "web:alice" in browser.find_element(By.ID, "activity").text
    browser.get(f"{console.url}/issues/{source['id']}")  # the merged-away id leads to the survivor
    assert browser.current_url.endswith(f"/issues/{target['id']}")

    for h in source_hashes:
        browser.find_element(By.CSS_SELECTOR, f"#hashes input[value='{h}']").click()
    browser.find_element(By.ID, "action-unmerge").click()
    wait_until(lambda: "split" in browser.find_element(By.CSS_SELECTOR, ".flash").text, 60, "the unmerge confirmation")
    remaining = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#hashes code")]
    assert not set(source_hashes) & set(remaining)
    assert "unmerge" in browser.find_element(By.ID, "activity").text


def test_failed_sign_ins_are_rate_limited(browser: Any, console: Console) -> None:
    """Last in this module: it locks the test's address out of signing in for a while."""
    for _ in range(5):
        sign_in(browser, console, "alice", "wrong password")
        assert "Wrong user name or password" in browser.find_element(By.ID, "login-error").text
    sign_in(browser, console, "alice")  # even the right password is refused now
    assert "Too many failed sign-ins" in browser.find_element(By.ID, "login-error").text
    assert "/login" in browser.current_url
