"""ops.auto_rebalance: a periodic task, off by default."""

from __future__ import annotations

from typing import Any

import pytest


def test_auto_rebalance_is_a_periodic_task_and_off_by_default(ops_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventpipe.ops.tasks as ops_tasks
    from eventpipe.schedules.spec import load_jobs
    from eventpipe.tasks.api import registry

    assert "ops.auto_rebalance" in registry and registry.get("ops.auto_rebalance").queue == "ops"
    spec = load_jobs().get("ops.auto_rebalance")  # declared beside its task
    assert spec.as_dict()["task"] == "ops.auto_rebalance"
    assert ops_runtime.settings.auto_rebalance is False  # off unless EVENTPIPE_AUTO_REBALANCE=1
    assert "skipped" in ops_tasks.auto_rebalance(ops_runtime)
    monkeypatch.setattr(ops_runtime.settings, "auto_rebalance", True)
    assert "two or more" in ops_tasks.auto_rebalance(ops_runtime)["skipped"]
