"""`eventpipe db upgrade` as users run it: a subprocess, on SQLite and on Postgres.

Every subsystem's migrations branch from 0001, so a migrated database is at several heads at
once; the command must report all of them (it used to crash after migrating, asking alembic
for "the" current revision)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from eventpipe.metadata.migrate import alembic_config

ROOT = Path(__file__).resolve().parents[2]


def eventpipe(*args: str, database_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPIPE_")}
    env.update(EVENTPIPE_DATABASE_URL=database_url, EVENTPIPE_HOME=str(home),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "eventpipe.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=home)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_db_upgrade_reports_every_head(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'meta.sqlite3'}"
    heads = sorted(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert len(heads) > 1  # the case that crashed: one branch per subsystem

    first = eventpipe("db", "upgrade", database_url=url, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "more than one head" not in first.stderr and "Traceback" not in first.stderr
    line = first.stdout.strip()
    assert line.startswith("database ") and line.endswith("at revision " + ", ".join(heads)), line

    again = eventpipe("db", "upgrade", "--json", database_url=url, home=tmp_path)  # already migrated
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["heads"] == heads
    assert report["database"].split("://")[0] == url.split("://")[0]


def test_db_upgrade_unreachable_database_says_what_to_do(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    result = eventpipe("db", "upgrade", "--json", database_url=url, home=tmp_path)
    assert result.returncode == 3, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ServiceUnavailable" and "127.0.0.1:1" in error["message"]
    assert "EVENTPIPE_" in error["next"]
    assert "next:" in result.stderr and "Traceback" not in result.stderr
