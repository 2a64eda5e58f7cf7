"""The CLI contract: demo JSON fields, idempotent reruns, send errors, tasks list."""

from __future__ import annotations

import json

from click.testing import CliRunner

from eventpipe.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def reset() -> None:
    from eventpipe.runtime import reset_runtime

    reset_runtime()


def test_demo_json_and_second_run_changes_no_total(tmp_path):
    code, output = run("demo", "--events", "600", "--seed", "7", "--json")
    assert code == 0, output
    first = json.loads(output)
    assert set(first) >= {"accepted", "duplicates", "rejected", "events_stored", "bodies_stored", "issues"}
    assert first["accepted"] > 500 and first["duplicates"] > 0 and sum(first["rejected"].values()) > 0
    assert first["events_stored"] == first["accepted"] == first["bodies_stored"]
    assert sum(i["count"] for i in first["issues"]) == first["events_stored"]
    assert set(first["issues"][0]) == {"id", "title", "count", "first_seen", "last_seen"}
    reset()
    code, output = run("demo", "--events", "600", "--seed", "7", "--json")
    second = json.loads(output)
    # a resent event id is accepted again and absorbed by the unique event row at save
    assert second["accepted"] == first["accepted"]
    for key in ("events_stored", "bodies_stored", "issues"):
        assert second[key] == first[key]
    reset()
    code, output = run("stats", "--flush", "--json")
    assert code == 0
    stats = json.loads(output)
    assert stats == {k: first[k] for k in ("events_stored", "bodies_stored", "issues")}
    reset()


def test_send_reports_file_and_field_and_keeps_good_files(tmp_path):
    run("projects", "add", "5", "shop")
    reset()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"message": "disk full", "level": "fatal"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["not an event"]))
    repaired = tmp_path / "repaired.json"
    repaired.write_text(json.dumps({"message": "x", "timestamp": "tomorrow-ish"}))
    env = tmp_path / "e.envelope"
    env.write_bytes(b'{"dsn":"https://k@h/5"}\n{"type":"event"}\n{"message":"from envelope"}\n')
    result = CliRunner().invoke(main, ["send", "--json", "--project", "5", str(good), str(bad), str(repaired), str(env)])
    reset()
    assert result.exit_code == 1
    assert "bad.json" in result.stderr and "must be a JSON object" in result.stderr
    report = json.loads(result.stdout)
    assert report["accepted"] == 3  # a bad timestamp is repaired, not rejected
    code, output = run("issues", "list", "--json")
    reset()
    titles = sorted(i["title"] for i in json.loads(output))
    assert titles == ["disk full", "from envelope", "x"]


def test_send_json_event_needs_a_project(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("{}")
    result = CliRunner().invoke(main, ["send", str(f)])
    reset()
    assert result.exit_code == 1 and "--project" in result.stderr


def test_tasks_list_json():
    code, output = run("tasks", "list", "--json")
    rows = {r["name"]: r for r in json.loads(output)}
    for name in ("events.process", "events.store_blob", "events.save", "events.post_process",
                 "buffers.flush", "rollups.hourly", "rollups.daily"):
        assert name in rows
    assert rows["events.save"]["physical_queue"] == "eventpipe.events.save"
    assert rows["events.save"]["batch"] is True and rows["buffers.flush"]["schedule"] == "every 10s"


def test_bad_config_names_the_variable(monkeypatch):
    monkeypatch.setenv("EVENTPIPE_MAX_RETRIES", "-3")
    result = CliRunner().invoke(main, ["stats"])
    reset()
    assert result.exit_code != 0
    assert "EVENTPIPE_MAX_RETRIES" in (result.output + (result.stderr or ""))
