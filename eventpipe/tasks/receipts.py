"""Idempotency receipts: a task declared with ``idempotency_key`` runs its body at most once per
key to completion. The receipt is written after success; a redelivery that finds it does nothing.
Effects inside the task still use idempotent writes, which cover a crash between effect and receipt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import TaskReceipt
from eventpipe.metadata.repo import insert_ignore

if TYPE_CHECKING:
    from eventpipe.tasks.api import Task, TaskContext


def run_once(rt: TaskContext, spec: Task, kwargs: dict[str, Any]) -> Any:
    assert spec.idempotency_key is not None
    key = f"{spec.name}:{spec.idempotency_key(kwargs)}"[:255]
    with rt.db.session() as s:
        if s.scalar(select(TaskReceipt.key).where(TaskReceipt.key == key)) is not None:
            return None
    result = spec.fn(rt, **kwargs)
    with rt.db.session() as s:
        insert_ignore(s, TaskReceipt, [{"key": key, "task": spec.name, "done_at": utcnow()}], ["key"])
    return result
