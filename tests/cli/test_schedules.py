"""Operator commands through click, on the pipeline's real job declarations, and the migration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from eventpipe.cli import _common
from eventpipe.cli import schedules as schedules_cli
from eventpipe.runtime import Runtime

from tests.support import schedules as helpers


@pytest.fixture
def rt(make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> Runtime:
    runtime = make_runtime()
    monkeypatch.setattr(_common, "open_runtime", lambda: runtime)
    monkeypatch.setattr(schedules_cli, "reset_runtime", lambda: None)
    return runtime


def run(*args: str) -> tuple[int, str]:
    group = schedules_cli.scheduler if args and args[0] == "scheduler" else schedules_cli.schedules
    result = CliRunner().invoke(group, list(args[1:] if args[0] == "scheduler" else args))
    return result.exit_code, result.output


def test_list_pause_resume_run_now_history(rt: Runtime) -> None:
    code, out = run("list", "--json")
    assert code == 0
    jobs = {j["job"]: j for j in json.loads(out)}
    assert set(jobs) >= {"buffers.flush", "rollups.hourly", "rollups.daily"}
    assert jobs["buffers.flush"]["spec"].startswith("every 10s") and jobs["buffers.flush"]["paused"] is False
    assert jobs["rollups.hourly"]["next_run"].endswith(":05:00Z")

    assert run("pause", "buffers.flush")[0] == 0
    code, out = run("list", "--json")
    flush = {j["job"]: j for j in json.loads(out)}["buffers.flush"]
    assert flush["paused"] is True and flush["next_run"] is None and flush["paused_by"].startswith("cli:")

    code, out = run("scheduler", "--once", "--json")
    assert code == 0
    tick = json.loads(out)
    assert "buffers.flush" in tick["paused"] and all(f["job"] != "buffers.flush" for f in tick["fired"])

    code, out = run("resume", "buffers.flush", "--json")
    assert code == 0 and json.loads(out)["paused"] is False

    code, out = run("run-now", "rollups.daily", "--json")
    assert code == 0
    message_id = json.loads(out)["message_id"]
    queued = [m for m in helpers.queued_messages(rt, "rollups") if m.message_id == message_id]
    assert queued and queued[0].options["manual"] is True and "expires_at" in queued[0].options

    code, out = run("history", "--job", "rollups.daily", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["kind"] == "manual" and row["job"] == "rollups.daily" and row["scheduler"].startswith("cli:")
    code, out = run("history")
    assert code == 0 and "rollups.daily" in out and "manual" in out
    code, out = run("list")
    assert code == 0 and "buffers.flush" in out and "rollups.hourly" in out


def test_unknown_job_errors_say_what_to_do(rt: Runtime) -> None:
    for args in (("pause", "nope"), ("resume", "nope"), ("run-now", "nope"), ("history", "--job", "nope")):
        code, out = run(*args)
        assert code == 1, args
        assert "no periodic job named 'nope'" in out and "buffers.flush" in out and "schedules list" in out


def test_scheduler_once_fires_what_is_due(rt: Runtime) -> None:
    code, out = run("scheduler", "--once", "--json")
    assert code == 0
    tick = json.loads(out)
    assert "buffers.flush" in {f["job"] for f in tick["fired"]}  # first sight: the current 10 s slot
    code, out = run("scheduler", "--once")
    assert code == 0 and ("nothing due" in out or "fired" in out)


def test_scheduler_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`eventpipe scheduler` runs until SIGTERM and exits 0 (waits for its start line, then signals)."""
    env = {**os.environ, "EVENTPIPE_HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("EVENTPIPE_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "eventpipe.cli", "scheduler", "--json", "--poll", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert first["event"] == "start" and first["claims"] == "sql" and first["embedded_workers"] is True
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["event"] == "stop"


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migration_creates_the_tables(db: str, make_runtime: Callable[..., Runtime], request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    runtime = make_runtime(database_url=url)
    tables = set(inspect(runtime.db.engine).get_table_names())
    assert {"schedule_jobs", "schedule_slots"} <= tables
    with runtime.db.engine.connect() as conn:
        from alembic.runtime.migration import MigrationContext

        heads = MigrationContext.configure(conn).get_current_heads()
    assert "0002_schedules" in heads


def test_start_in_thread_runs_and_stops(make_runtime: Callable[..., Runtime]) -> None:
    """The embedded mode: a scheduler thread beside the in-process workers; stop event, join."""
    from eventpipe.schedules.scheduler import start_in_thread
    from eventpipe.schedules.spec import JobRegistry, JobSpec

    runtime = make_runtime()
    clock = helpers.FakeClock()
    jobs = JobRegistry([JobSpec.build(helpers.TEST_TASK, every=10, name="embedded")])
    thread, stop = start_in_thread(runtime, poll_s=0.01, clock=clock, jobs=jobs, scheduler_id="embedded")
    try:
        while not helpers.queued_messages(runtime):  # the first tick fires 00:00 (no timing assertion)
            thread.join(0.01)
            assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert helpers.message_slots([runtime]) == [("embedded", helpers.T0.isoformat())]
