"""Coalescing of batch calls that arrive together (pure logic: threads, no broker)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from eventpipe.tasks.coalesce import Coalescer


class Outage(Exception):
    pass


def _race(coalescer: Coalescer, batches: list[list[dict]], execute, fails: dict[int, list]) -> dict[int, BaseException | None]:
    """Start one thread per batch at the same moment; returns each thread's outcome."""
    start = threading.Barrier(len(batches))
    outcome: dict[int, BaseException | None] = {}

    def worker(n: int) -> None:
        start.wait()
        try:
            coalescer.run(batches[n], lambda item, exc, n=n: fails.setdefault(n, []).append((item["id"], str(exc))), execute)
            outcome[n] = None
        except BaseException as exc:  # noqa: BLE001
            outcome[n] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcome


def test_concurrent_calls_run_as_one_and_a_failed_item_goes_back_to_its_own_message() -> None:
    calls: list[list[int]] = []

    def execute(items: Sequence[dict], fail_item) -> None:
        calls.append([it["id"] for it in items])
        for it in items:
            if it["id"] == 12:
                fail_item(it, ValueError("bad 12"))

    fails: dict[int, list] = {}
    batches = [[{"id": 10 * n + i} for i in range(3)] for n in range(4)]
    outcome = _race(Coalescer(limit=100, wait_s=0.5), batches, execute, fails)
    assert outcome == {0: None, 1: None, 2: None, 3: None}
    assert sorted(i for c in calls for i in c) == sorted(it["id"] for b in batches for it in b), "every item ran once"
    assert len(calls) < 4, f"concurrent calls were not merged: {calls}"
    assert fails == {1: [(12, "bad 12")]}, "the failed item is reported to the message it came in"


def test_an_outage_fails_every_message_of_the_group() -> None:
    def execute(items: Sequence[dict], fail_item) -> None:
        raise Outage("database gone")

    outcome = _race(Coalescer(limit=100, wait_s=0.5), [[{"id": n}] for n in range(3)], execute, {})
    assert all(isinstance(e, Outage) for e in outcome.values()) and len(outcome) == 3


def test_a_group_never_exceeds_the_limit() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def execute(items: Sequence[dict], fail_item) -> None:
        with lock:
            calls.append(len(items))

    outcome = _race(Coalescer(limit=5, wait_s=0.2), [[{"id": 3 * n + i} for i in range(3)] for n in range(6)], execute, {})
    assert all(e is None for e in outcome.values())
    assert sum(calls) == 18 and max(calls) <= 5


@pytest.mark.parametrize("size", [1, 3])
def test_a_lone_call_runs_its_own_items_unchanged(size: int) -> None:
    seen: list = []
    items = [{"id": i} for i in range(size)]

    def fail(item, exc) -> None:
        raise AssertionError("no failure expected")

    Coalescer(limit=10, wait_s=0.01).run(items, fail, lambda its, f: seen.append((its, f)))
    assert seen == [(items, fail)], "a group of one passes the message's own items and fail_item through"
