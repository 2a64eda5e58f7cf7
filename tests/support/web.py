"""Helpers for the browser tests of the console (the ``browser`` fixture is in tests/conftest.py): Debian's chromium driven by selenium through chromium-driver
(installed by `make install`/`make test`), against `eventpipe web` started as a subprocess.

Every step a user takes is a subprocess (`eventpipe demo`, `eventpipe users add`, `eventpipe web`)
or a click in the real browser; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MISSING_BROWSER = (
    f"{CHROMIUM} is not installed: the browser tests need Debian's chromium and chromium-driver "
    "(`make install` installs them with apt-get when run as root)"
)


def eventpipe(env: dict[str, str], cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the `eventpipe` command as a user would; fail with its output when it fails."""
    proc = subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"eventpipe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env.update({"PYTHONPATH": str(REPO), "EVENTPIPE_HOME": str(home), **extra})
    return env


@dataclass
class Console:
    url: str
    env: dict[str, str]
    cwd: Path
    passwords: dict[str, str] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> Any:
        """Run `eventpipe ARGS --json` in the console's environment and parse the output."""
        return json.loads(eventpipe(self.env, self.cwd, *args, "--json").stdout)


def start_console(env: dict[str, str], cwd: Path, users: dict[str, str]) -> Console:
    """Create the users (`eventpipe users add`), start `eventpipe web --port 0 --json` (any free
    port, no race with other programs) and read the URL it prints once listening."""
    console = Console(url="", env=env, cwd=cwd)
    for name, role in users.items():
        console.passwords[name] = console.cli("users", "add", name, "--role", role)["password"]
    out_path, log_path = cwd / "web.out", cwd / "web.log"
    with open(out_path, "wb") as out, open(log_path, "wb") as log:
        console.proc = subprocess.Popen([sys.executable, "-u", "-m", "eventpipe.cli", "web", "--port", "0", "--json"],
                                        env=env, cwd=cwd, stdout=out, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert console.proc.poll() is None, log_path.read_text()
        line = out_path.read_text().strip()
        if line:
            console.url = json.loads(line.splitlines()[0])["url"].rstrip("/")
            return console
        time.sleep(0.3)
    raise AssertionError("eventpipe web did not listen within 120 s: " + log_path.read_text())


def stop_console(console: Console) -> None:
    if console.proc is not None and console.proc.poll() is None:
        os.killpg(console.proc.pid, signal.SIGTERM)
        try:
            console.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(console.proc.pid, signal.SIGKILL)
            console.proc.wait()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` (stale elements from a refresh count as 'not yet') until truthy."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (StaleElementReferenceException, NoSuchElementException) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" ({last})" if last else ""))


def sign_in(driver: Any, console: Console, name: str, password: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password if password is not None else console.passwords[name])
    driver.find_element(By.ID, "sign-in").click()
    # wait for the answer: navigating away before it arrives would cancel the sign-in
    wait_until(lambda: "/login" not in driver.current_url or driver.find_elements(By.ID, "login-error"), 60,
               "the sign-in answer")


def post_from_page(driver: Any, path: str, fields: dict[str, str]) -> tuple[int, str]:
    """POST a form from inside the signed-in page (same cookies) and return (status, body)."""
    script = """
    const [path, fields, done] = arguments;
    fetch(path, {method: 'POST', credentials: 'same-origin', body: new URLSearchParams(fields), redirect: 'manual'})
      .then(r => r.text().then(t => done([r.status, t])))
      .catch(e => done([0, String(e)]));
    """
    status, body = driver.execute_async_script(script, path, fields)
    return int(status), str(body)


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """docs/NAME when CONSOLE_SCREENSHOTS=1 (how docs/console-*.png are made), else tmp."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        return REPO / "docs" / name
    return tmp_path / name


def click(driver: Any, css: str, timeout: float = 30) -> None:
    """Click the element matching ``css`` inside an auto-refreshing region: a refresh may replace
    it between finding and clicking, so find it again until the click lands."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return True
        except StaleElementReferenceException:
            return False

    wait_until(attempt, timeout, f"a clickable {css}")
