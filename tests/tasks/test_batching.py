import threading

import pytest

from eventpipe.tasks.batching import GroupCommit


def test_concurrent_calls_share_batches_and_get_their_own_results():
    calls = []

    def run(items):
        calls.append(list(items))
        return [i * 10 for i in items]

    group = GroupCommit(run, max_batch=8, max_wait_s=0.05)
    results = {}

    def call(i):
        results[i] = group.submit(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 10 for i in range(20)}
    assert sum(len(c) for c in calls) == 20
    assert len(calls) < 20, "some calls were coalesced"
    assert max(len(c) for c in calls) <= 8


def test_a_failing_item_fails_alone():
    def run(items):
        if 3 in items:
            raise ValueError("bad item 3")
        return list(items)

    group = GroupCommit(run, max_batch=8, max_wait_s=0.05)
    out, errors = {}, {}

    def call(i):
        try:
            out[i] = group.submit(i)
        except ValueError as exc:
            errors[i] = str(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == {3: "bad item 3"}
    assert out == {i: i for i in range(6) if i != 3}


def test_single_caller_gets_the_exception():
    group = GroupCommit(lambda items: 1 / 0, max_wait_s=0)
    with pytest.raises(ZeroDivisionError):
        group.submit(1)
