"""The issue actions the console offers, as calls into the issue lifecycle: status changes through
:func:`eventpipe.metadata.issues.set_status`, merge and unmerge through the ``start_*`` functions
of :mod:`eventpipe.tasks.groups` (the decisive change at once, the event moves as tasks). Each is
recorded in the issue's activity with the console user as the actor (``web:NAME``)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from eventpipe.metadata import issue_reads
from eventpipe.metadata import issues as lifecycle
from eventpipe.tasks import groups

CAN_MERGE = True


def _actor(user: str) -> str:
    return f"web:{user}"


def _run_here(rt: Any) -> None:
    """Embedded mode: the follow-up tasks sit in this process's broker; run them now."""
    if rt.broker.in_process:
        rt.broker.run_until_idle()


def _refuse(exc: Exception) -> HTTPException:
    code = 404 if isinstance(exc, lifecycle.IssueNotFound) else 400
    return HTTPException(code, str(exc))


def set_status(rt: Any, issue_id: int, status: str, user: str) -> bool:
    try:
        rows = lifecycle.set_status(rt.db, [issue_id], status, actor=_actor(user))
    except (lifecycle.IssueNotFound, lifecycle.InvalidIssueAction) as exc:
        raise _refuse(exc) from None
    return any(r["changed"] for r in rows)


def hashes(rt: Any, issue_id: int, issue: dict[str, Any]) -> list[str]:
    return issue_reads.issue_hashes(rt.db, issue_id)


def merge(rt: Any, issue_id: int, into: int, user: str) -> dict[str, Any]:
    try:
        result = groups.start_merge(rt, into, [issue_id], actor=_actor(user))
    except (lifecycle.IssueNotFound, lifecycle.InvalidIssueAction) as exc:
        raise _refuse(exc) from None
    _run_here(rt)
    return {k: v for k, v in result.items() if isinstance(v, (int, str, list))}


def unmerge(rt: Any, issue_id: int, chosen: list[str], user: str) -> dict[str, Any]:
    try:
        result = groups.start_unmerge(rt, issue_id, chosen, actor=_actor(user))
    except (lifecycle.IssueNotFound, lifecycle.InvalidIssueAction) as exc:
        raise _refuse(exc) from None
    _run_here(rt)
    return {k: v for k, v in result.items() if isinstance(v, (int, str, list))}
