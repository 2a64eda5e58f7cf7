"""Operator flags in SQL: drained nodes persisted and cached."""

from __future__ import annotations

from typing import Any


def test_drained_nodes_flag_is_persisted_and_cached(ops_runtime: Any) -> None:
    from eventpipe.metadata.flags import clear_drained, mark_drained

    rt = ops_runtime
    assert rt.drained_nodes() == set()
    assert mark_drained(rt.db, "10.0.0.1:5672")
    assert not mark_drained(rt.db, "10.0.0.1:5672")
    assert rt.drained_nodes() == {"10.0.0.1:5672"}
    assert clear_drained(rt.db, "10.0.0.1:5672")
    assert rt.drained_nodes() == set()
