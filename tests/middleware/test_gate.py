"""The queue gate: a closed queue refuses new work but not retries (embedded broker)."""

from __future__ import annotations

from typing import Any

import pytest


def test_closed_queue_refuses_new_work_but_not_retries(ops_runtime: Any) -> None:
    from eventpipe.metadata.flags import clear_cache, close_queue, open_queue
    from eventpipe.middleware.gate import QueueClosed

    rt = ops_runtime
    close_queue(rt.db, "testing")
    clear_cache()
    with pytest.raises(QueueClosed, match="undrain --queue testing"):
        rt.enqueue("opstest.record", key="x")
    rt.enqueue("opstest.record", key="retry", options={"retries": 1})  # a retry in flight is accepted
    open_queue(rt.db, "testing")
    rt.enqueue("opstest.record", key="y")
    rt.broker.run_until_idle()
    assert rt.store.get("done/y") is not None
