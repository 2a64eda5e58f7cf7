"""`eventpipe ops` in embedded mode (through click's runner)."""

from __future__ import annotations

from typing import Any

import pytest


def test_ops_cli_in_embedded_mode(ops_runtime: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from eventpipe.cli.ops import ops

    monkeypatch.setenv("EVENTPIPE_HOME", str(tmp_path / ".eventpipe"))
    monkeypatch.setenv("EVENTPIPE_TASK_MODULES", "tests.support.ops_tasks")
    from eventpipe.config import get_settings
    from eventpipe.runtime import reset_runtime

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        res = runner.invoke(ops, ["status", "--json"])
        assert res.exit_code == 0, res.output
        assert set(json.loads(res.output)) == {"queues", "workers", "links"}
        res = runner.invoke(ops, ["killswitch", "add", "events.*", "--where", "project_id=123", "--json"])
        rid = json.loads(res.output)["id"]
        listed = json.loads(runner.invoke(ops, ["killswitch", "list", "--json"]).output)
        assert listed[0]["where"] == {"project_id": 123}
        assert runner.invoke(ops, ["killswitch", "remove", str(rid)]).exit_code == 0
        assert runner.invoke(ops, ["killswitch", "remove", str(rid)]).exit_code != 0
        assert runner.invoke(ops, ["pause", "testing"]).exit_code == 0
        assert json.loads(runner.invoke(ops, ["paused", "--json"]).output)[0]["queue"] == "testing"
        assert runner.invoke(ops, ["resume", "testing"]).exit_code == 0
        assert runner.invoke(ops, ["pause", "nope"]).exit_code != 0
        res = runner.invoke(ops, ["drain", "--node", "127.0.0.1:5672", "--yes"])
        assert res.exit_code != 0 and "embedded" in res.output
    finally:
        reset_runtime()
