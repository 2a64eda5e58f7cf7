"""Issue lifecycle tasks: merge, unmerge, delete, snoozes, auto-resolve (regroup: tasks/regroup.py).

Each long job is started by a ``start_*`` function that makes the decisive change at once in one
transaction (hashes re-pointed, a redirect written, the issue hidden) and enqueues a task that
moves events one chunk per run and re-enqueues itself until done. A redelivered or duplicated
message finds less (or nothing) to move, so every task is idempotent; counts are kept exact by
per-event arithmetic (see eventpipe.metadata.issue_moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.issue_moves import (
    adjust_counts,
    delete_issue_rows,
    fold_into,
    move_events,
    recompute_seen,
)
from eventpipe.metadata.issues import (
    HIDDEN_STATUSES,
    SYSTEM_ACTOR,
    InvalidIssueAction,
    IssueNotFound,
    clear_expired_snoozes as clear_snoozes,
    hashes_of,
    pending_counts,
    record_activity,
    resolve_id,
)
from eventpipe.metadata.models import Event, GroupHash, Issue, IssueRedirect, Project, ScheduledDeletion
from eventpipe.pipeline.grouping import title_and_culprit
from eventpipe.tasks.api import TaskContext, task

CHUNK = 1000


# merge --------------------------------------------------------------------------------------------
def start_merge(ctx: TaskContext, target_id: int, source_ids: Sequence[int], *, actor: str, chunk: int = CHUNK) -> dict[str, Any]:
    """Merge issues into ``target_id``: from this commit on, their hashes (so new events) belong to
    the target and their ids redirect to it; ``groups.merge`` then moves the stored events."""
    with ctx.db.session() as s:
        target = resolve_id(s, target_id)
        sources = sorted({resolve_id(s, i) for i in source_ids} - {target})
        if not sources:
            raise InvalidIssueAction(f"nothing to merge: every id given is (or redirects to) issue {target}")
        target_issue = s.get(Issue, target, with_for_update=True)
        assert target_issue is not None
        if target_issue.status in HIDDEN_STATUSES:
            raise InvalidIssueAction(f"issue {target} is {target_issue.status.replace('_', ' ')}; pick another target")
        for src in sources:
            issue = s.get(Issue, src, with_for_update=True)
            assert issue is not None
            if issue.project_id != target_issue.project_id:
                raise InvalidIssueAction(
                    f"issue {src} is in project {issue.project_id}, issue {target} in {target_issue.project_id}: "
                    "only issues of one project can be merged"
                )
            if issue.status in HIDDEN_STATUSES:
                raise InvalidIssueAction(f"issue {src} is {issue.status.replace('_', ' ')}; leave it out")
        for src in sources:
            s.execute(update(GroupHash).where(GroupHash.issue_id == src).values(issue_id=target))
            s.execute(
                update(Issue).where(Issue.id == src).values(status="pending_merge", fingerprint_hash=f"merged-{src}")
            )
            s.execute(update(IssueRedirect).where(IssueRedirect.target_id == src).values(target_id=target))
            s.add(IssueRedirect(issue_id=src, project_id=target_issue.project_id, target_id=target, reason="merge", created_at=utcnow()))
        record_activity(s, project_id=target_issue.project_id, issue_id=target, kind="merge", actor=actor, data={"merged": sources})
        project_id = target_issue.project_id
    merge.send(ctx, target_id=target, source_ids=sources, chunk=chunk)
    from eventpipe.tasks.notify import send_activity  # the project's alert rules hear of it

    send_activity.send(ctx, project_id=project_id, issue_id=target, kind="merged",
                       key=f"merged:{target}:{','.join(map(str, sources))}", detail={"merged": sources, "actor": actor})
    return {"target": target, "merged": sources}


@task("groups.merge", queue="groups", max_retries=10)
def merge(ctx: TaskContext, *, target_id: int, source_ids: list[int], chunk: int = CHUNK) -> None:
    """Move one chunk of merged issues' events to the target; fold each emptied issue into it."""
    with ctx.db.session() as s:
        try:
            target_id = resolve_id(s, target_id)  # the target itself may have been folded since
        except IssueNotFound:
            target_id = -1
    for src in source_ids:
        with ctx.db.session() as s:
            if s.get(Issue, src) is None:
                continue  # folded already (a redelivery)
            if target_id == -1:
                raise IssueNotFound(src)  # target deleted: leave the source for an operator
            ids = list(s.scalars(select(Event.id).where(Event.issue_id == src).order_by(Event.id).limit(chunk)))
            if ids:
                move_events(s, ids, target_id, from_issue=src)
        if ids:
            merge.send(ctx, target_id=target_id, source_ids=source_ids, chunk=chunk)
            return
        with ctx.db.session() as s:
            fold_into(s, src, target_id, reason="merge", keep_hashes=True)
    with ctx.db.session() as s:
        recompute_seen(s, target_id)


# unmerge ------------------------------------------------------------------------------------------
def start_unmerge(ctx: TaskContext, issue_id: int, hashes: Sequence[str], *, actor: str, chunk: int = CHUNK) -> dict[str, Any]:
    """Split hashes off an issue into a new issue: new events of those hashes go there at once;
    ``groups.unmerge`` moves the stored ones and recomputes both issues' counts."""
    wanted = sorted(set(hashes))
    if not wanted:
        raise InvalidIssueAction("give at least one --hash (see `eventpipe issues show ID` for the issue's hashes)")
    with ctx.db.session() as s:
        real = resolve_id(s, issue_id)
        issue = s.get(Issue, real, with_for_update=True)
        assert issue is not None
        if issue.status in HIDDEN_STATUSES:
            raise InvalidIssueAction(f"issue {real} is {issue.status.replace('_', ' ')}")
        owned = set(hashes_of(s, real))
        missing = [h for h in wanted if h not in owned]
        if missing:
            raise InvalidIssueAction(f"issue {real} has no hash {', '.join(missing)}; see `eventpipe issues show {real}`")
        remaining = sorted(owned - set(wanted))
        if not remaining:
            raise InvalidIssueAction(f"that would take every hash of issue {real}; leave at least one (it has {len(owned)})")
        if issue.fingerprint_hash in wanted:
            s.execute(update(Issue).where(Issue.id == real).values(fingerprint_hash=remaining[0][:32]))
            s.flush()
        new = Issue(
            project_id=issue.project_id,
            fingerprint_hash=wanted[0][:32],
            title=issue.title,
            culprit=issue.culprit,
            level=issue.level,
            status="unresolved",
            first_seen=issue.first_seen,
            last_seen=issue.first_seen,
            times_seen=0,
        )
        s.add(new)
        s.flush()
        s.execute(
            update(GroupHash).where(GroupHash.project_id == issue.project_id, GroupHash.hash.in_(wanted)).values(issue_id=new.id)
        )
        record_activity(s, project_id=issue.project_id, issue_id=real, kind="unmerge", actor=actor, data={"hashes": wanted, "new_issue": new.id})
        record_activity(s, project_id=issue.project_id, issue_id=new.id, kind="unmerged_from", actor=actor, data={"issue": real, "hashes": wanted})
        new_id = new.id
    unmerge.send(ctx, source_id=real, new_id=new_id, hashes=wanted, chunk=chunk)
    return {"issue": real, "new_issue": new_id, "hashes": wanted}


@task("groups.unmerge", queue="groups", max_retries=10)
def unmerge(ctx: TaskContext, *, source_id: int, new_id: int, hashes: list[str], chunk: int = CHUNK) -> None:
    """Move one chunk of the split-off hashes' events to the new issue (counts -1/+1 per event);
    when none are left, recompute both issues' first/last seen and the new issue's title."""
    with ctx.db.session() as s:
        rows = s.execute(
            select(Event.id).where(Event.issue_id == source_id, Event.fingerprint.in_(hashes)).order_by(Event.id).limit(chunk)
        ).scalars().all()
        if rows:
            moved = move_events(s, list(rows), new_id, from_issue=source_id)
            adjust_counts(s, {source_id: -moved, new_id: moved})
    if rows:
        unmerge.send(ctx, source_id=source_id, new_id=new_id, hashes=hashes, chunk=chunk)
        return
    with ctx.db.session() as s:
        recompute_seen(s, source_id)
        recompute_seen(s, new_id)
        latest = s.scalar(select(Event.kv_key).where(Event.issue_id == new_id).order_by(Event.timestamp.desc()).limit(1))
    if latest is not None:
        raw = ctx.store.get(latest)
        if raw is not None:
            title, culprit = title_and_culprit(orjson.loads(raw))
            with ctx.db.session() as s:
                s.execute(update(Issue).where(Issue.id == new_id).values(title=title, culprit=culprit))


# delete -------------------------------------------------------------------------------------------
def start_delete(ctx: TaskContext, issue_ids: Sequence[int], *, actor: str, chunk: int = CHUNK) -> list[dict[str, Any]]:
    """Hide issues at once (new events of their hashes start a fresh issue), record the deletion,
    and enqueue ``groups.delete``. Merged-away ids are refused rather than followed: deleting the
    surviving issue by an old id would be a surprise."""
    out = []
    now = utcnow()
    with ctx.db.session() as s:
        for issue_id in dict.fromkeys(issue_ids):
            redirect = s.get(IssueRedirect, issue_id)
            if redirect is not None:
                raise InvalidIssueAction(f"issue {issue_id} was merged into {redirect.target_id}; delete {redirect.target_id} if you mean it")
            if s.get(Issue, issue_id) is None:
                raise IssueNotFound(issue_id)
        for issue_id in dict.fromkeys(issue_ids):
            issue = s.get(Issue, issue_id, with_for_update=True)
            assert issue is not None
            if issue.status == "pending_merge":
                raise InvalidIssueAction(f"issue {issue_id} is being merged; delete the merge target instead")
            s.execute(delete(GroupHash).where(GroupHash.issue_id == issue_id))
            s.execute(update(Issue).where(Issue.id == issue_id).values(status="pending_deletion", fingerprint_hash=f"deleted-{issue_id}"))
            if s.scalar(select(ScheduledDeletion.id).where(ScheduledDeletion.kind == "issue", ScheduledDeletion.object_id == issue_id)) is None:
                s.add(ScheduledDeletion(kind="issue", object_id=issue_id, project_id=issue.project_id, actor=actor, created_at=now, last_enqueued_at=now))
            out.append({"id": issue_id, "status": "pending_deletion"})
    for row in out:
        delete_issue.send(ctx, issue_id=row["id"], chunk=chunk)
    return out


def delete_issue_chunk(ctx: TaskContext, issue_id: int, chunk: int) -> bool:
    """Delete one chunk of an issue's events (rows, then bodies); True when the issue is gone."""
    with ctx.db.session() as s:
        rows = s.execute(select(Event.id, Event.kv_key).where(Event.issue_id == issue_id).order_by(Event.id).limit(chunk)).all()
        if rows:
            s.execute(delete(Event).where(Event.id.in_([r.id for r in rows])))
    if rows:
        ctx.store.delete_many([r.kv_key for r in rows])  # a crash here leaves orphans: cleanup.kv_orphans
        return False
    with ctx.db.session() as s:
        if s.scalar(select(Event.id).where(Event.issue_id == issue_id).limit(1)) is not None:
            return False  # an event saved meanwhile
        delete_issue_rows(s, issue_id)
        s.execute(
            update(ScheduledDeletion)
            .where(ScheduledDeletion.kind == "issue", ScheduledDeletion.object_id == issue_id, ScheduledDeletion.done_at.is_(None))
            .values(done_at=utcnow())
        )
    return True


@task("groups.delete", queue="groups", max_retries=10)
def delete_issue(ctx: TaskContext, *, issue_id: int, chunk: int = CHUNK) -> None:
    """Delete an issue chunk by chunk: event rows, then their bodies in the KV store, then the issue."""
    if not delete_issue_chunk(ctx, issue_id, chunk):
        delete_issue.send(ctx, issue_id=issue_id, chunk=chunk)


# snoozes and auto-resolve -------------------------------------------------------------------------
@task("groups.clear_expired_snoozes", queue="groups", max_retries=3, every="60s", schedule={"expires_s": 55})
def clear_expired_snoozes(ctx: TaskContext) -> int:
    """Ignored issues whose snooze lapsed (time or event count) become unresolved again."""
    total = 0
    while True:
        cleared = clear_snoozes(ctx.db)
        total += len(cleared)
        if len(cleared) < 1000:
            return total


@task("groups.schedule_auto_resolve", queue="groups", max_retries=3, every="10m", schedule={"expires_s": 540})
def schedule_auto_resolve(ctx: TaskContext) -> int:
    """Enqueue ``groups.auto_resolve_project`` for each project with a ``resolve_age``."""
    with ctx.db.session() as s:
        ids = list(s.scalars(select(Project.id).where(Project.resolve_age > 0).order_by(Project.id)))
    for pid in ids:
        auto_resolve_project.send(ctx, project_id=pid)
    return len(ids)


@task("groups.auto_resolve_project", queue="groups", max_retries=3)
def auto_resolve_project(ctx: TaskContext, *, project_id: int, chunk: int = CHUNK) -> int:
    """Resolve the project's unresolved issues not seen for ``resolve_age`` hours (pending
    increments count as seen), one chunk per run."""
    now = utcnow()
    with ctx.db.session() as s:
        project = s.get(Project, project_id)
        if project is None or not project.resolve_age:
            return 0
        cutoff = now - timedelta(hours=project.resolve_age)
        candidates = list(
            s.scalars(
                select(Issue.id)
                .where(Issue.project_id == project_id, Issue.status == "unresolved", Issue.last_seen < cutoff)
                .order_by(Issue.id)
                .limit(chunk)
            )
        )
        pending = pending_counts(s, candidates)
        resolved = 0
        for issue_id in candidates:
            if issue_id in pending and pending[issue_id][2] >= cutoff:
                continue  # seen recently; the increment is not flushed yet
            flipped = s.execute(
                update(Issue)
                .where(Issue.id == issue_id, Issue.status == "unresolved", Issue.last_seen < cutoff)
                .values(status="resolved", resolved_at=now)
            ).rowcount
            if flipped:
                resolved += 1
                record_activity(
                    s, project_id=project_id, issue_id=issue_id, kind="resolved", actor=SYSTEM_ACTOR,
                    data={"auto": True, "resolve_age_hours": project.resolve_age}, now=now,
                )
    if len(candidates) == chunk and resolved:
        auto_resolve_project.send(ctx, project_id=project_id, chunk=chunk)
    return resolved


def set_resolve_age(ctx: TaskContext, project_id: int, hours: int | None) -> None:
    with ctx.db.session() as s:
        if s.get(Project, project_id) is None:
            raise InvalidIssueAction(f"no project {project_id}; see `eventpipe projects list`")
        s.execute(update(Project).where(Project.id == project_id).values(resolve_age=hours or None))
