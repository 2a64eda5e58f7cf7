"""Events for lifecycle tests, sent through the real pipeline (ingest -> process -> save)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import func, select

from eventpipe.ingest.submit import submit_many
from eventpipe.metadata.models import Event, GroupHash, Issue


def crash(etype: str = "KeyError", function: str = "show", *, module: str = "app.views", ts: float | None = None, **extra: Any) -> dict[str, Any]:
    """An exception event; events with the same type and in-app function group together."""
    return {
        "event_id": uuid.uuid4().hex,
        "platform": "python",
        "timestamp": ts if ts is not None else time.time(),
        "exception": {"values": [{"type": etype, "value": "boom", "stacktrace": {"frames": [
            {"module": "django.core", "function": "dispatch", "lineno": 3},
            {"module": module, "function": function, "lineno": 10, "in_app": True},
        ]}}]},
        **extra,
    }


def ingest(rt: Any, project_id: int, events: list[dict[str, Any]]) -> None:
    """Submit and run the embedded workers until every queue is empty."""
    result = submit_many(rt, project_id, events)
    assert len(result.accepted) == len(events), result.rejected_by_reason()
    rt.broker.run_until_idle()


def issue_of(rt: Any, event_id: str) -> int:
    with rt.db.session() as s:
        return s.scalar(select(Event.issue_id).where(Event.event_id == event_id))


def events_per_issue(rt: Any, project_id: int) -> dict[int, int]:
    with rt.db.session() as s:
        return dict(
            s.execute(select(Event.issue_id, func.count()).where(Event.project_id == project_id).group_by(Event.issue_id)).all()
        )


def hashes(rt: Any, issue_id: int) -> set[str]:
    with rt.db.session() as s:
        return set(s.scalars(select(GroupHash.hash).where(GroupHash.issue_id == issue_id)))


def issue_ids(rt: Any, project_id: int) -> set[int]:
    with rt.db.session() as s:
        return set(s.scalars(select(Issue.id).where(Issue.project_id == project_id)))
