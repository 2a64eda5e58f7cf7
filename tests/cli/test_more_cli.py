"""The operator commands over the new tasks, as subprocesses in the embedded mode: events
reprocess / backfill-enrichment, kv migrate-range / verify-range, ops history."""

from __future__ import annotations

import json

from eventpipe.config import load_settings
from eventpipe.kvstore import open_raw_store
from tests.cli.test_issues_cli import cli, write_events  # noqa: F401  (fixture)


def test_reprocess_backfill_and_range_jobs(cli, tmp_path):  # noqa: F811
    cli("projects", "add", "1", "api")
    cli("send", "--project", "1", "--json", str(write_events(tmp_path / "ev.json", [("KeyError", "a", 3), ("ValueError", "b", 2)])))
    before = sorted(r["count"] for r in cli.json("issues", "list", "--project", "1"))

    out = cli.json("events", "reprocess", "--project", "1", "--chunk", "2")
    assert out["done"] and out["until_id"] >= 5
    out = cli.json("events", "backfill-enrichment", "--project", "1")
    assert out["done"]
    assert sorted(r["count"] for r in cli.json("issues", "list", "--project", "1")) == before == [2, 3]

    src = load_settings(home=tmp_path / "home").resolved_kv_url()
    dst = f"file://{tmp_path / 'copy'}"
    job = cli.json("kv", "migrate-range", "--from", src, "--to", dst, "--job", "j1", "--chunk", "2")
    assert (job["state"], job["scanned"], job["copied"], job["missing"]) == ("done", 5, 5, 0)
    job = cli.json("kv", "verify-range", "--job", "v1", "--url", dst)
    assert (job["state"], job["scanned"], job["missing"], job["corrupt"]) == ("done", 5, 0, 0)

    copy = open_raw_store(dst)
    copy.delete(next(iter(copy.keys("1/"))))  # lose one body: verify finds it (exit 1), repair brings it back
    lost = cli("kv", "verify-range", "--job", "v2", "--url", dst, "--json", ok=False)
    assert lost.returncode == 1 and json.loads(lost.stdout)["missing"] == 1
    job = cli.json("kv", "verify-range", "--job", "v3", "--url", dst, "--repair-from", src)
    assert (job["missing"], job["repaired"]) == (1, 1)
    assert cli.json("kv", "verify-range", "--job", "v4", "--url", dst)["missing"] == 0

    assert cli.json("ops", "history") == []  # embedded mode: no broker to snapshot
    missing = cli("kv", "verify-range", "--job", "v2", "--url", dst, "--json", ok=False)
    assert missing.returncode == 1  # the finished job is shown again, problems and all
