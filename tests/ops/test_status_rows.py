"""Status rows without a broker: behind-marking and totals, publish times, unreachable nodes.
(The same commands against real nodes are in test_status.py.)"""

from __future__ import annotations

import pytest


def test_mark_flags_rows_and_totals_behind() -> None:
    from eventpipe.ops.status import QueueRow, mark

    rows = [QueueRow("q", "a", 60, 0, 1, 5.0), QueueRow("q", "b", 60, 0, 1, 120.0), QueueRow("r", "a", 0, 0, 1, 0.0)]
    totals = mark(rows, lag_threshold=60, backlog_threshold=100)
    assert [r.behind for r in rows] == [False, True, False]
    by_q = {t["queue"]: t for t in totals}
    assert by_q["q"]["ready"] == 120 and by_q["q"]["behind"] and by_q["q"]["lag_seconds"] == 120.0
    assert not by_q["r"]["behind"]


def test_publish_time_prefers_millisecond_creation_within_the_stamped_second() -> None:
    import json
    from types import SimpleNamespace

    from eventpipe.ops.status import publish_time

    body = json.dumps({"message_timestamp": 1_000_000_500_250}).encode()
    assert publish_time(SimpleNamespace(timestamp=1_000_000_500), body) == pytest.approx(1_000_000_500.25)
    # a re-published retry: the creation time is older than the stamp -> the stamp wins
    assert publish_time(SimpleNamespace(timestamp=1_000_000_900), body) == 1_000_000_900
    assert publish_time(SimpleNamespace(timestamp=None), b"raw") is None


def test_unreachable_node_is_reported_not_skipped() -> None:
    from eventpipe.ops.status import node_rows
    from eventpipe.queues.management import BrokerNode
    from eventpipe.queues.topology import Topology

    dead = BrokerNode("amqp://guest:secret@127.0.0.1:1/%2F", "http://guest:secret@127.0.0.1:1")
    rows = node_rows(dead, Topology("p."), ["events", "testing"])
    assert [r.queue for r in rows] == ["events", "testing"]
    assert all(r.ready is None and r.error and "secret" not in r.error for r in rows)
