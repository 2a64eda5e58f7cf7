"""Batch tasks: one message, many items; a failing item is isolated, retried or dead-lettered alone."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from eventpipe.metadata.models import DeadLetter
from eventpipe.tasks.api import MAX_BATCH_BYTES
from eventpipe.tasks.batch import pack
from tests.support import tasks as support


@pytest.fixture
def rt(make_runtime):
    support.BATCH_CALLS.clear()
    return make_runtime(task_modules=["tests.support.tasks"])


def test_one_poison_item_is_dead_lettered_alone_and_the_others_commit_once(rt):
    items = [{"id": i, "poison": i == 6} for i in range(10)]
    support.batch_record.send_many(rt, items)
    rt.broker.run_until_idle()

    committed = [i for call in support.BATCH_CALLS for i in call]
    assert sorted(committed) == [i for i in range(10) if i != 6], "every good item committed exactly once"
    assert all(rt.store.get(f"batch/{i}") == b"1" for i in range(10) if i != 6)
    assert rt.store.get("batch/6") is None
    with rt.db.session() as s:
        letters = s.execute(select(DeadLetter.task, DeadLetter.message, DeadLetter.reason)).all()
    assert len(letters) == 1, "only the poison item is dead-lettered"
    task, message, reason = letters[0]
    assert task == "testing.batch_record"
    assert message["kwargs"]["items"] == [{"id": 6, "poison": True}]
    assert "item 6 is poison" in reason


def _published(rt, monkeypatch) -> list[bytes]:
    """The encoded bodies of every message the broker is given from now on."""
    bodies: list[bytes] = []
    original = rt.broker.enqueue

    def enqueue(message, *args, **kwargs):
        bodies.append(message.encode())
        return original(message, *args, **kwargs)

    monkeypatch.setattr(rt.broker, "enqueue", enqueue)
    return bodies


def test_a_batch_larger_than_the_bounds_is_split_into_messages(rt, monkeypatch):
    published = _published(rt, monkeypatch)
    support.batch_record.send_many(rt, [{"id": i} for i in range(25)])
    sizes = sorted(len(orjson.loads(b)["kwargs"]["items"]) for b in published)
    assert sizes == [5, 10, 10], "batch_size=10 packs 25 items in 3 messages"
    rt.broker.run_until_idle()
    assert sorted(i for c in support.BATCH_CALLS for i in c) == list(range(25))
    assert all(len(c) <= 10 for c in support.BATCH_CALLS), "coalesced calls stay within batch_size"

    support.BATCH_CALLS.clear()
    published.clear()
    pad = "x" * (MAX_BATCH_BYTES // 3)
    support.batch_record.send_many(rt, [{"id": 100 + i, "pad": pad} for i in range(5)])
    assert len(published) >= 3, "five items of a third of the bound each need at least three messages"
    assert all(len(b) <= MAX_BATCH_BYTES + 1024 for b in published)
    rt.broker.run_until_idle()
    assert sorted(i for c in support.BATCH_CALLS for i in c) == [100, 101, 102, 103, 104]


def test_pack_bounds_items_and_bytes():
    items = [{"n": i} for i in range(7)]
    assert [len(c) for c in pack(items, [10] * 7, max_items=3, max_bytes=1000)] == [3, 3, 1]
    assert [len(c) for c in pack(items, [400] * 7, max_items=10, max_bytes=1000)] == [2, 2, 2, 1]
    assert [len(c) for c in pack(items[:2], [5000, 5], max_items=10, max_bytes=1000)] == [1, 1], "an oversized item travels alone"


def test_a_transient_error_retries_the_whole_batch_not_item_by_item(rt, monkeypatch):
    from eventpipe.kvstore import KVUnavailable

    real_put_many = rt.store.put_many
    failures = {"left": 1}

    def flaky_put_many(items, **kw):
        if failures["left"]:
            failures["left"] -= 1
            raise KVUnavailable(rt.store.url, "down for a moment")
        return real_put_many(items, **kw)

    monkeypatch.setattr(rt.store, "put_many", flaky_put_many)
    support.batch_record.send_many(rt, [{"id": i} for i in range(8)])
    rt.broker.run_until_idle()
    assert support.BATCH_CALLS == [list(range(8))], "one retry of the whole message after the outage"
