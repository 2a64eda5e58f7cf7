"""Group commit for the asyncio HTTP server: concurrent requests share one store write and one
confirmed publish.

A request parks its item and awaits a future. A flush takes everything parked when it starts (up
to ``max_batch``), runs the blocking batch function in a worker thread and answers each request
with its own result. While ``concurrency`` flushes are in flight (each waiting for the broker's
confirm, i.e. an fsync), new requests gather for the next one: the batch grows with the load,
and a lone request waits at most ``max_wait_s`` before its flush starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")


class AsyncGroupCommit(Generic[T, R]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], list[R]],
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        concurrency: int = 4,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch:
            self._kick()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._kick)
        return await future

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.get_running_loop().create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        async with self._slots:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            if self._pending and self._timer is None:
                self._kick()
            if not batch:
                return
            try:
                results = await anyio.to_thread.run_sync(self.run_batch, [item for item, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter learns of the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
