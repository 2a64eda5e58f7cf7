"""The lifecycle commands as users run them: `eventpipe` subprocesses in the embedded mode with
its defaults (SQLite metadata and bodies under EVENTPIPE_HOME), each command a fresh process,
checked by exit code and output. The same code paths on Postgres are covered by tests/tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env.update(
        EVENTPIPE_HOME=str(tmp_path / "home"),
        EVENTPIPE_ACTOR="tester",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )

    def run(*args: str, ok: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "eventpipe"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, input=stdin, timeout=300
        )
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def js(*args: str):
        return json.loads(run(*args, "--json").stdout)

    run.json = js  # type: ignore[attr-defined]
    return run


def write_events(path: Path, specs: list[tuple[str, str, int]]) -> Path:
    events = []
    for etype, function, n in specs:
        for _ in range(n):
            events.append({
                "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python",
                "exception": {"values": [{"type": etype, "value": "boom", "stacktrace": {"frames": [
                    {"module": "app.views", "function": function, "in_app": True}]}}]},
            })
    path.write_text(json.dumps(events))
    return path


def test_lifecycle_resolve_ignore_merge_unmerge_delete(cli, tmp_path):
    cli("projects", "add", "1", "api")
    events = write_events(tmp_path / "ev.json", [("KeyError", "a", 4), ("KeyError", "b", 3), ("ValueError", "c", 2)])
    cli("send", "--project", "1", "--json", str(events))
    rows = cli.json("issues", "list", "--project", "1")
    assert sorted(r["count"] for r in rows) == [2, 3, 4]  # pending increments counted
    ids = {r["culprit"].split(" in ")[-1]: r["id"] for r in rows}
    a, b, c = ids["a"], ids["b"], ids["c"]

    out = cli.json("issues", "resolve", str(a), str(b))
    assert [(r["id"], r["status"]) for r in out] == [(a, "resolved"), (b, "resolved")]
    out = cli.json("issues", "ignore", str(c), "--count", "5")
    assert out[0]["status"] == "ignored"
    shown = cli.json("issues", "show", str(c))
    assert shown["snooze_until_count"] == 7 and shown["activity"][0]["actor"] == "tester"
    bad = cli("issues", "resolve", "999999", ok=False)
    assert bad.returncode == 2 and "issues list" in bad.stderr
    bad = cli("issues", "ignore", str(c), "--until", "yesterday", ok=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr

    merged = cli.json("issues", "merge", "--into", str(a), str(b))
    assert merged == {"target": a, "merged": [b], "done": True}
    shown = cli.json("issues", "show", str(b))
    assert shown["id"] == a and shown["redirected_from"] == b and shown["count"] == 7
    assert len(shown["hashes"]) == 2 and shown["latest_event"]["body"]["platform"] == "python"

    b_hash = next(h for h in shown["hashes"] if h != shown["fingerprint_hash"])
    split = cli.json("issues", "unmerge", str(a), "--hash", b_hash)
    new = split["new_issue"]
    bad = cli("issues", "unmerge", str(a), "--hash", "nope", ok=False)
    assert bad.returncode == 2 and "issues show" in bad.stderr

    event_id = cli.json("issues", "show", str(new))["latest_event"]["event_id"]
    ev = cli.json("events", "show", "1", event_id)
    assert ev["event"]["event_id"] == event_id
    assert cli.json("issues", "delete", str(new)) == [{"id": new, "status": "deleted"}]
    assert cli("events", "show", "1", event_id, ok=False).returncode == 1  # the body is gone too
    counts = {r["id"]: r["count"] for r in cli.json("issues", "list", "--project", "1")}
    assert counts == {a: 4, c: 2}


def test_fingerprint_rules_and_regroup(cli, tmp_path):
    cli("projects", "add", "1", "api")
    events = write_events(tmp_path / "ev.json", [("ConnectionError", f, 3) for f in ("x", "y", "z")] + [("KeyError", "k", 2)])
    cli("send", "--project", "1", str(events))
    assert len(cli.json("issues", "list")) == 4

    bad_rules = tmp_path / "bad.txt"
    bad_rules.write_text("colour:red -> x\n")
    bad = cli("projects", "fingerprint-rules", "1", str(bad_rules), ok=False)
    assert bad.returncode == 2 and "line 1" in bad.stderr and "unknown matcher" in bad.stderr
    rules = tmp_path / "rules.txt"
    rules.write_text("# network\nerror.type:ConnectionError -> connection-errors\n")
    assert cli.json("projects", "fingerprint-rules", "1", str(rules))["version"] == 1

    summary = cli.json("issues", "regroup", "--project", "1", "--chunk", "4")
    assert {k: summary[k] for k in ("status", "events_read", "events_moved", "issues_created", "merged_away")} == {
        "status": "done", "events_read": 11, "events_moved": 9, "issues_created": 1, "merged_away": 3}
    rows = cli.json("issues", "list")
    assert sorted(r["count"] for r in rows) == [2, 9]
    text = cli("issues", "regroup", "--project", "1")
    assert "0 moved" in text.stdout


def test_projects_set_and_cleanup_run(cli, tmp_path):
    cli("projects", "add", "1", "api")
    old = [{"event_id": uuid.uuid4().hex, "timestamp": time.time() - 3 * 86400, "message": "old"} for _ in range(3)]
    new = [{"event_id": uuid.uuid4().hex, "message": "new"}]
    (tmp_path / "ev.json").write_text(json.dumps(old + new))
    cli("send", "--project", "1", str(tmp_path / "ev.json"))
    assert cli.json("projects", "set", "1", "--retention-days", "2", "--resolve-age", "12") == {
        "id": 1, "name": "api", "retention_days": 2, "resolve_age": 12}
    dry = cli.json("cleanup", "run", "--dry-run")
    assert dry["expired_events"] == {"1": 3} and dry["dry_run"] is True
    done = cli.json("cleanup", "run")
    assert done["done"] is True and done["expired_events"] == {"1": 3}
    text = cli("cleanup", "run", "--dry-run").stdout
    assert "events past retention: 0 due" in text
    assert sum(r["count"] for r in cli.json("issues", "list")) == 4  # counts outlive events
    assert cli.json("projects", "delete", "1") == {"project_id": 1, "status": "deleted"}
    assert cli.json("issues", "list") == []
