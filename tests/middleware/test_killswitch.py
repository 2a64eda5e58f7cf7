"""Kill-switch rules: matching, and the middleware dropping only matching messages (embedded broker)."""

from __future__ import annotations

from typing import Any

import pytest


def test_rule_matching() -> None:
    from eventpipe.middleware.killswitch import Rule
    from eventpipe.ops.killswitch import parse_where

    where = parse_where(["project_id=123", "kind=crash"])
    assert where == {"project_id": 123, "kind": "crash"}
    rule = Rule(1, "events.*", where)
    assert rule.matches("events.save", {"project_id": 123, "kind": "crash", "x": 1})
    assert rule.matches("events.save", {"project_id": "123", "kind": "crash"})
    assert not rule.matches("events.save", {"project_id": 124, "kind": "crash"})
    assert not rule.matches("events.save", {"project_id": 123})
    assert not rule.matches("buffers.flush", {"project_id": 123, "kind": "crash"})
    with pytest.raises(ValueError):
        parse_where(["noequals"])


def test_killswitch_middleware_drops_only_matching_messages_and_counts_them(ops_runtime: Any) -> None:
    from eventpipe.middleware.killswitch import KillSwitch
    from eventpipe.ops.killswitch import add_rule, list_rules

    rt = ops_runtime
    ks = next(m for m in rt.broker.middleware if isinstance(m, KillSwitch))
    ks.ttl = 0.0  # read rules on every message in this test
    rule_id = add_rule(rt.db, "opstest.*", {"project_id": 123})
    for i in range(5):
        rt.enqueue("opstest.record", key=f"drop{i}", project_id=123)
        rt.enqueue("opstest.record", key=f"keep{i}", project_id=456)
    rt.broker.run_until_idle()
    assert all(rt.store.get(f"done/keep{i}") is not None for i in range(5))
    assert all(rt.store.get(f"done/drop{i}") is None for i in range(5))
    assert ks.dropped[rule_id] == 5
    ks.rules()  # flushes the pending count to SQL
    assert next(r for r in list_rules(rt.db) if r["id"] == rule_id)["dropped"] == 5
