"""The issue lifecycle as plain functions: list, show, resolve/unresolve/ignore, and the queries
merge, unmerge, regroup and delete share. The CLI and the web console call these; the chunked
work (moving events) is in eventpipe.tasks.groups.

Counts shown include pending write-behind increments (``buffered_counters`` not yet folded into
``issues.times_seen``), so a list read right after ingest is exact without a flush. Every status
change writes an Activity row naming the actor. Merged-away ids redirect (``issue_redirects``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from eventpipe.errors import EventpipeError
from eventpipe.kvstore import KeyValueStore
from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import Activity, BufferedCounter, Event, GroupHash, Issue, IssueRedirect

STATUSES = ("unresolved", "resolved", "ignored")
HIDDEN_STATUSES = ("pending_merge", "pending_deletion")  # issues on their way out
SYSTEM_ACTOR = "system"


class IssueNotFound(EventpipeError, LookupError):
    exit_code = 2  # the operator named an id that does not exist (3 is "a service is unreachable")

    def __init__(self, issue_id: int) -> None:
        super().__init__(f"no issue {issue_id}; see `eventpipe issues list`")
        self.issue_id = issue_id


class InvalidIssueAction(EventpipeError, ValueError):
    """A lifecycle request that cannot be done as asked (the message says what to do instead)."""

    exit_code = 2


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat() + "Z"


# Reading ------------------------------------------------------------------------------------------
def pending_counts(s: Session, issue_ids: Iterable[int] | None = None) -> dict[int, tuple[int, datetime, datetime]]:
    """Buffered increments not yet flushed: issue id -> (count, first seen, last seen)."""
    q = select(
        BufferedCounter.issue_id, func.sum(BufferedCounter.delta), func.min(BufferedCounter.seen_at), func.max(BufferedCounter.seen_at)
    ).group_by(BufferedCounter.issue_id)
    if issue_ids is not None:
        ids = list(issue_ids)
        if not ids:
            return {}
        q = q.where(BufferedCounter.issue_id.in_(ids))
    return {row[0]: (int(row[1] or 0), row[2], row[3]) for row in s.execute(q)}


def issue_dict(issue: Issue, pending: tuple[int, datetime, datetime] | None = None) -> dict[str, Any]:
    count, first, last = issue.times_seen, issue.first_seen, issue.last_seen
    if pending is not None:
        count += pending[0]
        first, last = min(first, pending[1]), max(last, pending[2])
    return {
        "id": issue.id,
        "project_id": issue.project_id,
        "title": issue.title,
        "culprit": issue.culprit,
        "level": issue.level,
        "status": issue.status,
        "count": count,
        "first_seen": _iso(first),
        "last_seen": _iso(last),
        "resolved_at": _iso(issue.resolved_at),
        "snooze_until": _iso(issue.snooze_until),
        "snooze_until_count": issue.snooze_until_seen,
        "fingerprint_hash": issue.fingerprint_hash,
    }


def list_issues(
    db: Database,
    *,
    project_id: int | None = None,
    status: str | None = None,
    query: str | None = None,
    level: str | None = None,
    sort: str = "count",
    limit: int | None = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Issues with counts that include pending increments; ``status`` None means all visible ones."""
    pending = (
        select(BufferedCounter.issue_id.label("issue_id"), func.sum(BufferedCounter.delta).label("n"))
        .group_by(BufferedCounter.issue_id)
        .subquery()
    )
    total = Issue.times_seen + func.coalesce(pending.c.n, 0)
    q = select(Issue).outerjoin(pending, pending.c.issue_id == Issue.id)
    if project_id is not None:
        q = q.where(Issue.project_id == project_id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidIssueAction(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        q = q.where(Issue.status == status)
    else:
        q = q.where(Issue.status.not_in(HIDDEN_STATUSES))
    if level:
        q = q.where(Issue.level == level)
    if query:
        like = f"%{query}%"
        q = q.where(Issue.title.ilike(like) | Issue.culprit.ilike(like))
    order = {"count": total.desc(), "last_seen": Issue.last_seen.desc(), "first_seen": Issue.first_seen.desc()}
    if sort not in order:
        raise InvalidIssueAction(f"unknown sort {sort!r}; use one of {', '.join(order)}")
    q = q.order_by(order[sort], Issue.id).offset(offset)
    if limit:
        q = q.limit(limit)
    with db.session() as s:
        issues = list(s.scalars(q))
        counts = pending_counts(s, [i.id for i in issues])
        return [issue_dict(i, counts.get(i.id)) for i in issues]


def resolve_id(s: Session, issue_id: int) -> int:
    """Follow merge/regroup redirects to the issue that exists now; raises IssueNotFound. A
    redirect wins over a row still being merged away, so old ids show the surviving issue at once."""
    seen = set()
    current = issue_id
    while current not in seen and len(seen) < 32:
        seen.add(current)
        redirect = s.get(IssueRedirect, current)
        if redirect is not None:
            current = redirect.target_id
            continue
        if s.get(Issue, current) is not None:
            return current
        break
    raise IssueNotFound(issue_id)


def show_issue(db: Database, issue_id: int, store: KeyValueStore | None = None, *, activities: int = 20) -> dict[str, Any]:
    """One issue (after redirects) with its hashes, event count, latest event and recent activity.
    With ``store`` the latest event's body is included."""
    with db.session() as s:
        real_id = resolve_id(s, issue_id)
        issue = s.get(Issue, real_id)
        assert issue is not None
        out = issue_dict(issue, pending_counts(s, [real_id]).get(real_id))
        if real_id != issue_id:
            out["redirected_from"] = issue_id
        out["hashes"] = list(s.scalars(select(GroupHash.hash).where(GroupHash.issue_id == real_id).order_by(GroupHash.hash)))
        out["merged_ids"] = list(
            s.scalars(select(IssueRedirect.issue_id).where(IssueRedirect.target_id == real_id).order_by(IssueRedirect.issue_id))
        )
        out["events_stored"] = s.scalar(select(func.count()).select_from(Event).where(Event.issue_id == real_id)) or 0
        latest = s.execute(
            select(Event).where(Event.issue_id == real_id).order_by(Event.timestamp.desc(), Event.id.desc()).limit(1)
        ).scalar_one_or_none()
        out["latest_event"] = None
        if latest is not None:
            out["latest_event"] = {
                "event_id": latest.event_id,
                "timestamp": _iso(latest.timestamp),
                "received_at": _iso(latest.received_at),
                "fingerprint": latest.fingerprint,
                "level": latest.level,
                "platform": latest.platform,
                "kv_key": latest.kv_key,
            }
        out["activity"] = [
            {"kind": a.kind, "actor": a.actor, "data": a.data, "created_at": _iso(a.created_at), "event_id": a.event_id}
            for a in s.scalars(
                select(Activity).where(Activity.issue_id == real_id).order_by(Activity.id.desc()).limit(activities)
            )
        ]
    if store is not None and out["latest_event"] is not None:
        raw = store.get(out["latest_event"]["kv_key"])
        out["latest_event"]["body"] = None if raw is None else orjson.loads(raw)
    return out


# Writing ------------------------------------------------------------------------------------------
def record_activity(
    s: Session, *, project_id: int, issue_id: int, kind: str, actor: str, data: dict[str, Any] | None = None, now: datetime | None = None
) -> None:
    """An activity row for a user or system action. Its ``event_id`` is a fresh action id (the
    column is the idempotency key of event-driven activity: first_seen, regression)."""
    s.add(
        Activity(
            project_id=project_id,
            issue_id=issue_id,
            kind=kind,
            event_id=uuid.uuid4().hex,
            created_at=now or utcnow(),
            actor=actor,
            data=data,
        )
    )


def set_status(
    db: Database,
    issue_ids: Sequence[int],
    status: str,
    *,
    actor: str,
    until: datetime | None = None,
    count: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Resolve, unresolve or ignore issues (ids may be merged-away ones: they redirect).

    ``ignore`` takes an optional snooze: ``until`` (naive UTC) and/or ``count`` (more events);
    ``groups.clear_expired_snoozes`` turns a lapsed snooze back to unresolved. Issues already in
    the asked state are left as they are (no activity). All ids are checked before any changes."""
    if status not in STATUSES:
        raise InvalidIssueAction(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    if status != "ignored" and (until is not None or count is not None):
        raise InvalidIssueAction("--until and --count only apply to `issues ignore`")
    if count is not None and count < 1:
        raise InvalidIssueAction("--count must be at least 1 (the number of further events before it reappears)")
    now = now or utcnow()
    if until is not None and until <= now:
        raise InvalidIssueAction(f"--until {until.isoformat()}Z is in the past; give a future time (UTC)")
    out = []
    with db.session() as s:
        resolved = [(i, resolve_id(s, i)) for i in issue_ids]
        done: set[int] = set()
        for asked, real in resolved:
            if real in done:
                continue
            done.add(real)
            issue = s.get(Issue, real, with_for_update=True)
            assert issue is not None
            if issue.status in HIDDEN_STATUSES:
                raise InvalidIssueAction(f"issue {real} is being {issue.status.split('_')[1]}d; wait for that to finish")
            before = issue.status
            values: dict[str, Any] = {"status": status, "snooze_until": None, "snooze_until_seen": None}
            if status == "resolved":
                values["resolved_at"] = now if before != "resolved" else issue.resolved_at
            else:
                values["resolved_at"] = None
            if status == "ignored" and count is not None:
                seen = issue.times_seen + pending_counts(s, [real]).get(real, (0,))[0]
                values["snooze_until_seen"] = seen + count
            if status == "ignored":
                values["snooze_until"] = until
            changed = before != status or values["snooze_until"] != issue.snooze_until or (
                values["snooze_until_seen"] != issue.snooze_until_seen
            )
            if changed:
                s.execute(update(Issue).where(Issue.id == real).values(**values))
                data: dict[str, Any] = {"from": before}
                if until is not None:
                    data["until"] = _iso(until)
                if count is not None:
                    data["count"] = count
                record_activity(s, project_id=issue.project_id, issue_id=real, kind=status, actor=actor, data=data, now=now)
            row = {"id": real, "project_id": issue.project_id, "status": status, "previous": before, "changed": changed,
                   "at": _iso(now)}
            if asked != real:
                row["redirected_from"] = asked
            out.append(row)
    return out


def clear_expired_snoozes(db: Database, *, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Ignored issues whose snooze lapsed (time passed, or enough new events) become unresolved."""
    now = now or utcnow()
    cleared: list[int] = []
    with db.session() as s:
        candidates = list(
            s.scalars(
                select(Issue)
                .where(Issue.status == "ignored")
                .where(Issue.snooze_until.is_not(None) | Issue.snooze_until_seen.is_not(None))
                .order_by(Issue.id)
                .limit(limit)
            )
        )
        pending = pending_counts(s, [i.id for i in candidates if i.snooze_until_seen is not None])
        for issue in candidates:
            by_time = issue.snooze_until is not None and issue.snooze_until <= now
            seen = issue.times_seen + pending.get(issue.id, (0,))[0]
            by_count = issue.snooze_until_seen is not None and seen >= issue.snooze_until_seen
            if not (by_time or by_count):
                continue
            flipped = s.execute(
                update(Issue)
                .where(Issue.id == issue.id, Issue.status == "ignored")
                .values(status="unresolved", snooze_until=None, snooze_until_seen=None)
            ).rowcount
            if flipped:
                reason = "until" if by_time else "count"
                record_activity(
                    s, project_id=issue.project_id, issue_id=issue.id, kind="unignored", actor=SYSTEM_ACTOR,
                    data={"reason": reason}, now=now,
                )
                cleared.append(issue.id)
    return cleared


def hashes_of(s: Session, issue_id: int) -> list[str]:
    return list(s.scalars(select(GroupHash.hash).where(GroupHash.issue_id == issue_id)))
