"""Dead letters on the embedded broker: list, show, replay, purge."""

from __future__ import annotations

from typing import Any


def test_embedded_dead_letters_list_show_replay_purge(ops_runtime: Any) -> None:
    from eventpipe.ops.dlq import Filter, sql_walk

    rt = ops_runtime
    for i in range(3):
        rt.enqueue("opstest.fixable", key=f"k{i}")
    rt.enqueue("testing.permanent", what="nope")
    rt.broker.run_until_idle()
    listed = sql_walk(rt, Filter())
    assert listed.matched == 4
    fixable = [d for d in listed.items if d.task == "opstest.fixable"]
    assert "KV key 'fixed'" in fixable[0].reason and "PermanentError" in fixable[0].traceback
    one = sql_walk(rt, Filter(ident=fixable[0].message_id))
    assert one.matched == 1 and one.items[0].kwargs == {"key": fixable[0].kwargs["key"]}
    rt.store.put("fixed", b"1")
    replayed = sql_walk(rt, Filter(task="opstest.fixable"), action="replay")
    assert replayed.replayed == 3
    rt.broker.run_until_idle()
    assert all(rt.store.get(f"done/k{i}") is not None for i in range(3))
    left = sql_walk(rt, Filter())
    assert [d.task for d in left.items] == ["testing.permanent"]
    assert sql_walk(rt, Filter(task="testing.*"), action="purge").purged == 1
    assert sql_walk(rt, Filter()).matched == 0
