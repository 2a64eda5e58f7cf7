"""SQL steps shared by merge, unmerge, regroup and delete: moving events between issues in chunks,
folding a merged-away issue into its target, creating the issue of a new hash.

Each function runs inside the caller's transaction; the callers (eventpipe.tasks.groups) commit
one chunk at a time, so a crash loses at most the chunk in flight and the next run continues.
Counter arithmetic is per moved event (old issue -1, new issue +1) so counts stay exact whether or
not the events' buffered increments were flushed yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import (
    Activity,
    BufferedCounter,
    Event,
    GroupHash,
    Issue,
    IssueRedirect,
    Rollup,
)
from eventpipe.metadata.repo import insert_ignore


def move_events(
    s: Session, event_ids: Sequence[int], target_id: int, *, from_issue: int, fingerprint: str | None = None
) -> int:
    """Move events that are still in ``from_issue`` to the target; returns how many moved. The
    condition makes concurrent movers (a merge and a regroup) agree: an event another transaction
    moved first is skipped, and callers adjust counts by what actually moved."""
    values: dict[str, Any] = {"issue_id": target_id}
    if fingerprint is not None:
        values["fingerprint"] = fingerprint
    moved = 0
    for start in range(0, len(event_ids), 500):
        part = event_ids[start : start + 500]
        moved += s.execute(update(Event).where(Event.id.in_(part), Event.issue_id == from_issue).values(**values)).rowcount or 0
    return moved


def adjust_counts(s: Session, deltas: dict[int, int]) -> None:
    for issue_id, delta in sorted(deltas.items()):
        if delta:
            s.execute(update(Issue).where(Issue.id == issue_id).values(times_seen=Issue.times_seen + delta))


def widen_seen(s: Session, issue_id: int, first: datetime, last: datetime) -> None:
    issue = s.get(Issue, issue_id)
    if issue is not None:
        s.execute(
            update(Issue)
            .where(Issue.id == issue_id)
            .values(first_seen=min(issue.first_seen, first), last_seen=max(issue.last_seen, last))
        )


def recompute_seen(s: Session, issue_id: int) -> None:
    """first/last seen from the issue's stored events (left alone when it has none)."""
    first, last = s.execute(
        select(func.min(Event.timestamp), func.max(Event.timestamp)).where(Event.issue_id == issue_id)
    ).one()
    if first is not None:
        s.execute(update(Issue).where(Issue.id == issue_id).values(first_seen=first, last_seen=last))


def move_rollups(s: Session, source_id: int, target_id: int) -> None:
    """Add the source's rollup rows to the target's (same buckets), then drop the source's."""
    rows = list(s.scalars(select(Rollup).where(Rollup.issue_id == source_id)))
    for row in rows:
        existing = s.get(Rollup, (row.resolution, row.bucket, row.project_id, target_id))
        if existing is None:
            s.add(Rollup(resolution=row.resolution, bucket=row.bucket, project_id=row.project_id, issue_id=target_id, count=row.count))
        else:
            existing.count += row.count
    s.flush()
    s.execute(delete(Rollup).where(Rollup.issue_id == source_id))


def fold_into(s: Session, source_id: int, target_id: int, *, reason: str, keep_hashes: bool) -> bool:
    """Fold a source issue that has no events left into the target: its counts (flushed and
    pending), rollups, activity and redirects go to the target, then the row is deleted. With
    ``keep_hashes`` (a merge) its hashes go to the target; without (a regroup) they are dropped,
    so a later rules change can give them an issue of their own again. False if already gone."""
    source = s.get(Issue, source_id, with_for_update=True)
    target = s.get(Issue, target_id, with_for_update=True)
    if source is None or target is None:
        return False
    stragglers = list(s.scalars(select(Event.id).where(Event.issue_id == source_id)))
    move_events(s, stragglers, target_id, from_issue=source_id)  # saved while the chunks moved; normally none
    s.execute(update(BufferedCounter).where(BufferedCounter.issue_id == source_id).values(issue_id=target_id))
    s.execute(
        update(Issue)
        .where(Issue.id == target_id)
        .values(
            times_seen=Issue.times_seen + source.times_seen,
            first_seen=min(target.first_seen, source.first_seen),
            last_seen=max(target.last_seen, source.last_seen),
        )
    )
    move_rollups(s, source_id, target_id)
    s.execute(update(Activity).where(Activity.issue_id == source_id).values(issue_id=target_id))
    if keep_hashes:
        s.execute(update(GroupHash).where(GroupHash.issue_id == source_id).values(issue_id=target_id))
    else:
        s.execute(delete(GroupHash).where(GroupHash.issue_id == source_id))
    s.execute(update(IssueRedirect).where(IssueRedirect.target_id == source_id).values(target_id=target_id))
    if s.get(IssueRedirect, source_id) is None:
        s.add(IssueRedirect(issue_id=source_id, project_id=source.project_id, target_id=target_id, reason=reason, created_at=utcnow()))
    s.flush()
    s.execute(delete(Issue).where(Issue.id == source_id))
    return True


def issue_for_hash(
    s: Session, project_id: int, hash_: str, *, title: str, culprit: str, level: str, ts: datetime
) -> tuple[int, bool]:
    """The issue owning ``hash_``, creating it (and its group hash) when none does; (id, created)."""
    owner = s.scalar(select(GroupHash.issue_id).where(GroupHash.project_id == project_id, GroupHash.hash == hash_))
    if owner is not None:
        return owner, False
    created = insert_ignore(
        s,
        Issue,
        [
            {
                "project_id": project_id,
                "fingerprint_hash": hash_[:32],
                "title": title,
                "culprit": culprit,
                "level": level,
                "status": "unresolved",
                "first_seen": ts,
                "last_seen": ts,
                "times_seen": 0,
            }
        ],
        ["project_id", "fingerprint_hash"],
    )
    issue_id = s.scalar(select(Issue.id).where(Issue.project_id == project_id, Issue.fingerprint_hash == hash_[:32]))
    insert_ignore(s, GroupHash, [{"project_id": project_id, "hash": hash_, "issue_id": issue_id}], ["project_id", "hash"])
    owner = s.scalar(select(GroupHash.issue_id).where(GroupHash.project_id == project_id, GroupHash.hash == hash_))
    return owner, bool(created) and owner == issue_id


def delete_issue_rows(s: Session, issue_id: int) -> None:
    """Everything of an issue that has no events left (the caller checked)."""
    s.execute(delete(BufferedCounter).where(BufferedCounter.issue_id == issue_id))
    s.execute(delete(Rollup).where(Rollup.issue_id == issue_id))
    s.execute(delete(Activity).where(Activity.issue_id == issue_id))
    s.execute(delete(GroupHash).where(GroupHash.issue_id == issue_id))
    s.execute(delete(IssueRedirect).where(IssueRedirect.target_id == issue_id))
    s.execute(delete(Issue).where(Issue.id == issue_id))
