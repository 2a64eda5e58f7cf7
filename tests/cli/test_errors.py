"""Errors as users see them: the `eventpipe` command in a subprocess, with and without --json.

Every error prints ``error: …`` and ``next: …`` on stderr and exits with its code; with --json
stdout carries one ``{"error": {...}}`` object instead of a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def eventpipe(*args: str, home: Path, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env.update(EVENTPIPE_HOME=str(home / ".eventpipe"), **env_extra,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=home)


def test_unknown_job(tmp_path: Path) -> None:
    text = eventpipe("schedules", "pause", "nope", home=tmp_path)
    assert text.returncode == 1 and text.stdout == ""
    assert "error: no periodic job named 'nope'" in text.stderr and "buffers.flush" in text.stderr
    assert "next: `eventpipe schedules list`" in text.stderr and "Traceback" not in text.stderr
    machine = eventpipe("schedules", "pause", "nope", "--json", home=tmp_path)
    assert machine.returncode == 1
    error = json.loads(machine.stdout)["error"]
    assert error["type"] == "UnknownJob" and error["exit_code"] == 1 and error["retryable"] is False
    assert "no periodic job named 'nope'" in error["message"] and "schedules list" in error["next"]


def test_bad_configuration_names_the_variable(tmp_path: Path) -> None:
    result = eventpipe("stats", "--json", home=tmp_path, EVENTPIPE_PREFETCH="lots")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ConfigError" and "EVENTPIPE_PREFETCH" in error["message"]
    assert "EVENTPIPE_PREFETCH" in result.stderr and "next:" in result.stderr


def test_unknown_store_scheme(tmp_path: Path) -> None:
    result = eventpipe("kv", "verify", "bogus://x", "--json", home=tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "KVBadURL" and "bogus" in error["message"] and "eventpipe kv backends" in error["next"]


def test_usage_errors_keep_click_exit_code(tmp_path: Path) -> None:
    result = eventpipe("ops", "drain", home=tmp_path)
    assert result.returncode == 2 and "exactly one of --node" in result.stderr
