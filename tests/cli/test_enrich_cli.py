"""Affected users and tag values as users read them: `issues list/show --json` subprocesses in the
embedded mode; a merge keeps the merged issue's users and tags counted on the survivor."""

from __future__ import annotations

import json
import time
import uuid

from tests.cli.test_issues_cli import cli  # noqa: F401  (fixture)


def _event(function: str, user: str, env: str) -> dict:
    return {
        "event_id": uuid.uuid4().hex, "timestamp": time.time(), "platform": "python",
        "user": {"id": user}, "tags": {"env": env},
        "exception": {"values": [{"type": "KeyError", "value": "boom", "stacktrace": {"frames": [
            {"module": "app.views", "function": function, "in_app": True}]}}]},
    }


def test_users_and_tags_in_issues_list_and_show(cli, tmp_path):  # noqa: F811
    cli("projects", "add", "1", "api")
    events = [_event("a", "u1", "prod"), _event("a", "u2", "prod"), _event("a", "u1", "dev"),
              _event("b", "u3", "prod"), _event("b", "u1", "prod")]
    (tmp_path / "ev.json").write_text(json.dumps(events))
    cli("send", "--project", "1", "--json", str(tmp_path / "ev.json"))
    rows = cli.json("issues", "list", "--project", "1")
    by_fn = {r["culprit"].split(" in ")[-1]: r for r in rows}
    assert (by_fn["a"]["users"], by_fn["b"]["users"]) == (2, 2)
    a, b = by_fn["a"]["id"], by_fn["b"]["id"]
    shown = cli.json("issues", "show", str(a))
    assert shown["users"] == 2 and shown["tags"]["env"] == [{"value": "prod", "count": 2}, {"value": "dev", "count": 1}]
    cli("issues", "merge", "--into", str(a), str(b), "--json")
    shown = cli.json("issues", "show", str(a))
    assert shown["users"] == 3  # u1, u2, u3: u1 counted once
    assert shown["tags"]["env"] == [{"value": "prod", "count": 4}, {"value": "dev", "count": 1}]
    text = cli("issues", "show", str(a)).stdout
    assert "users: 3" in text and "tag env: prod (4), dev (1)" in text
