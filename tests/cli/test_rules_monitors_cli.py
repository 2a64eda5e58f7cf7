"""`eventpipe rules` and `eventpipe monitors` as users run them: subprocesses, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EVENTPIPE_HOME": str(tmp_path / ".eventpipe")}
    return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_rules_add_list_remove(tmp_path):
    assert ep(tmp_path, "projects", "add", "1", "api").returncode == 0
    r = ep(tmp_path, "rules", "add", "--project", "1", "--when", "frequency:100/5", "--level", "warning",
           "--email", "a@example.com", "--email", "b@example.com", "--webhook", "https://hooks.example.com/x", "--json")
    assert r.returncode == 0, r.stderr
    rule = json.loads(r.stdout)
    assert rule["when"] == "frequency:100/5" and rule["emails"] == ["a@example.com", "b@example.com"] and rule["throttle_minutes"] == 30
    r = ep(tmp_path, "rules", "add", "--project", "1", "--when", "first_seen", "--email", "c@example.com", "--throttle-minutes", "0")
    assert r.returncode == 0 and "first_seen" in r.stdout
    listed = json.loads(ep(tmp_path, "rules", "list", "--json").stdout)
    assert [x["when"] for x in listed] == ["frequency:100/5", "first_seen"]
    assert "c@example.com" in ep(tmp_path, "rules", "list").stdout

    assert json.loads(ep(tmp_path, "rules", "remove", str(rule["id"]), "--json").stdout) == {"removed": rule["id"]}
    gone = ep(tmp_path, "rules", "remove", str(rule["id"]))
    assert gone.returncode == 1 and "rules list" in gone.stderr
    assert json.loads(ep(tmp_path, "rules", "sends", "--json").stdout) == []


def test_rules_errors_say_what_to_do(tmp_path):
    ep(tmp_path, "projects", "add", "1", "api")
    bad = ep(tmp_path, "rules", "add", "--project", "1", "--when", "often", "--email", "a@example.com")
    assert bad.returncode == 2 and "frequency:N/MINUTES" in bad.stderr
    none = ep(tmp_path, "rules", "add", "--project", "1", "--when", "first_seen")
    assert none.returncode == 2 and "--email" in none.stderr
    missing = ep(tmp_path, "rules", "add", "--project", "9", "--when", "first_seen", "--email", "a@example.com")
    assert missing.returncode == 2 and "projects add 9" in missing.stderr
    bad_smtp = subprocess.run([sys.executable, "-m", "eventpipe.cli", "rules", "list"], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(REPO), "EVENTPIPE_HOME": str(tmp_path / ".eventpipe"), "EVENTPIPE_SMTP_URL": "mail.example.com"})
    assert bad_smtp.returncode != 0 and "EVENTPIPE_SMTP_URL" in bad_smtp.stderr + bad_smtp.stdout


def test_monitors_add_list_checkin(tmp_path):
    ep(tmp_path, "projects", "add", "1", "api")
    r = ep(tmp_path, "monitors", "add", "Nightly Backup", "--project", "1", "--schedule", "0 3 * * *", "--margin-minutes", "10", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["slug"] == "nightly-backup"
    again = ep(tmp_path, "monitors", "add", "Nightly Backup", "--project", "1", "--schedule", "0 3 * * *")
    assert again.returncode == 2 and "already has a monitor" in again.stderr
    bad = ep(tmp_path, "monitors", "add", "x", "--project", "1", "--schedule", "daily")
    assert bad.returncode == 2 and "cron expression" in bad.stderr
    listed = json.loads(ep(tmp_path, "monitors", "list", "--json").stdout)
    assert [(m["slug"], m["schedule"], m["margin_minutes"]) for m in listed] == [("nightly-backup", "0 3 * * *", 10)]
    c = ep(tmp_path, "monitors", "checkin", "nightly-backup", "--project", "1", "--status", "error", "--json")
    assert c.returncode == 0 and json.loads(c.stdout)["status"] == "error"
    assert "POST /api/1/cron/other/" in ep(tmp_path, "monitors", "add", "Other", "--project", "1", "--schedule", "*/5 * * * *").stdout
