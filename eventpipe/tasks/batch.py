"""Running a batch task: one message, many items, and a failing item isolated on its own.

A batch task's function gets every item of its message and commits them together (one SQL
transaction, one ``put_many``), which is where eventpipe's throughput comes from. Two rules keep
that from weakening delivery:

- An item the function reports as failed (:class:`~eventpipe.tasks.api.ItemFailures`) is handed
  to ``fail_item``: re-published alone with its retry delay, or dead-lettered with its reason.
  The rest of the message is acked.
- If the function raises, an outage (``is_transient``) fails the whole message, which is retried
  as a whole (nothing was committed; every item waits for the outage together). Any other error
  is isolated by bisection: the halves are run again, recursively, until the failing items stand
  alone — ``O(k log n)`` extra runs for ``k`` bad items, and each good item commits exactly once
  (batch tasks commit all-or-nothing per call, and their effects are idempotent anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventpipe.tasks.api import Item, ItemFailures, Task, TaskContext

FailItem = Callable[[Item, BaseException], None]


def run_batch(
    spec: Task, ctx: TaskContext, items: Sequence[Item], fail_item: FailItem, is_transient: Callable[[BaseException], bool]
) -> None:
    """Run ``spec`` over ``items``; raises only when the whole message must be retried."""
    if len(items) == 1:
        failed = _run(spec, ctx, items)
        if failed:
            raise next(iter(failed.values()))  # a one-item message follows the normal retry path
        return
    for index, exc in sorted(_attempt(spec, ctx, items, is_transient).items()):
        fail_item(items[index], exc)


def _run(spec: Task, ctx: TaskContext, items: Sequence[Item]) -> dict[int, BaseException]:
    out: Any = spec.fn(ctx, list(items))
    return dict(out.errors) if isinstance(out, ItemFailures) else {}


def _attempt(
    spec: Task, ctx: TaskContext, items: Sequence[Item], is_transient: Callable[[BaseException], bool]
) -> dict[int, BaseException]:
    try:
        return _run(spec, ctx, items)
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(items) == 1:
            return {0: exc}
    mid = len(items) // 2
    left = _attempt(spec, ctx, items[:mid], is_transient)
    right = _attempt(spec, ctx, items[mid:], is_transient)
    return {**left, **{mid + i: e for i, e in right.items()}}


def pack(items: Sequence[Item], sizes: Sequence[int], *, max_items: int, max_bytes: int) -> list[list[Item]]:
    """Split items into chunks of at most ``max_items`` items and ``max_bytes`` encoded bytes
    (an item larger than ``max_bytes`` travels alone)."""
    chunks: list[list[Item]] = []
    current: list[Item] = []
    used = 0
    for item, size in zip(items, sizes, strict=True):
        if current and (len(current) >= max_items or used + size > max_bytes):
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        chunks.append(current)
    return chunks
