"""Shared pieces of the notification tests: events, the post_process -> evaluate_rules hand-over,
and waiting for digests to leave."""

from __future__ import annotations

import inspect
import time
import uuid
from collections import defaultdict
from email.message import Message
from typing import Any

from sqlalchemy import func, select

from eventpipe.metadata.models import Activity, DigestRecord, Event, NotificationSend

SECRET = "test-webhook-secret"


def crash(kind: str, i: int) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "platform": "python",
        "exception": {"values": [{"type": kind, "value": f"failure {i}", "stacktrace": {"frames": [
            {"module": "app.views", "function": f"handler_{kind.lower()}", "lineno": 10},
        ]}}]},
    }


def post_process_wired() -> bool:
    from eventpipe.tasks import events

    return "evaluate_rules" in inspect.getsource(events)


def hand_over(rt: Any) -> int:
    """What ``events.post_process`` does once wired: every saved event goes to
    ``notify.evaluate_rules`` with its activity kinds (a batch task). Skipped when the pipeline
    already does it (a second hand-over would change nothing anyway: throttle and unique keys)."""
    if post_process_wired():
        return 0
    with rt.db.session() as s:
        kinds: dict[tuple[int, str], list[str]] = defaultdict(list)
        for issue_id, event_id, kind in s.execute(select(Activity.issue_id, Activity.event_id, Activity.kind)):
            kinds[(issue_id, event_id)].append(kind)
        items = [
            {"project_id": p, "issue_id": i, "event_id": e, "level": lvl, "kinds": kinds.get((i, e), [])}
            for p, i, e, lvl in s.execute(select(Event.project_id, Event.issue_id, Event.event_id, Event.level).order_by(Event.id))
        ]
    from eventpipe.tasks.notify import evaluate_rules

    evaluate_rules.send_many(rt, items)
    rt.broker.run_until_idle()
    return len(items)


def drain_digests(rt: Any, timeout: float = 120.0) -> None:
    """Run the periodic digest job (as the scheduler does) until every record is in a digest and
    no send is pending."""
    from eventpipe.tasks.notify import schedule_digests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            waiting = s.scalar(select(func.count()).select_from(DigestRecord).where(DigestRecord.digest_id.is_(None)))
            pending = s.scalar(select(func.count()).select_from(NotificationSend).where(NotificationSend.status.in_(("pending", "sending"))))
        if not waiting and not pending:
            return
        schedule_digests(rt)
        rt.broker.run_until_idle()
        time.sleep(0.3)
    raise AssertionError(f"digests not delivered after {timeout}s")


def issues_in(msg: Message) -> list[str]:
    """Issue lines of a digest email body ("- TITLE (N events; kinds)")."""
    body = msg.get_payload(decode=True).decode()
    return [line[2:].rsplit(" (", 1)[0] for line in body.splitlines() if line.startswith("- ")]
