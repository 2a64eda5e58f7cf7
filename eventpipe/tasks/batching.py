"""Group commit: coalesce concurrent task calls into one transaction.

Worker threads that call :meth:`GroupCommit.submit` at about the same time are served by one
call of the batch function (one SQL transaction instead of N). Each caller returns only after the
batch holding its item committed, so dramatiq acks a message only after *its* effects are
durable — at-least-once is untouched, there are just fewer commits. If a batch fails, its items
are retried one by one, so one bad item cannot fail its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    def __init__(self, run_batch: Callable[[Sequence[T]], list[R]], *, max_batch: int = 64, max_wait_s: float = 0.002) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._pending: list[_Slot[T, R]] = []
        self._leader_active = False
        self._full = threading.Event()

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._leader_active
            if lead:
                self._leader_active = True
                self._full.clear()
            elif len(self._pending) >= self.max_batch:
                self._full.set()
        if lead:
            self._full.wait(self.max_wait_s)  # let concurrent callers join the batch
            self._lead()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                if not batch:
                    self._leader_active = False
                    return
            self._execute(batch)

    def _execute(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self.run_batch([s.item for s in batch])
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except BaseException:  # noqa: BLE001 - isolate the culprit: one item per transaction
            if len(batch) == 1:
                import sys

                batch[0].error = sys.exc_info()[1]
            else:
                for s in batch:
                    try:
                        s.result = self.run_batch([s.item])[0]
                    except BaseException as exc:  # noqa: BLE001
                        s.error = exc
        finally:
            for s in batch:
                s.done.set()
