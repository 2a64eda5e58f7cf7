"""Cleanup and retention: old events (rows, then bodies), deleted projects, orphan bodies, old
dead letters, and the re-sending of deletions whose message was lost.

Order of deletion is always rows first, bodies second: a crash in between leaves bodies with no
row (found and removed by ``cleanup.kv_orphans``), never a row pointing at a missing body. Every
task works in chunks and re-enqueues itself, so one message never holds a worker for long and a
redelivery only finds less to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.issue_moves import delete_issue_rows
from eventpipe.metadata.issues import InvalidIssueAction
from eventpipe.metadata.models import (
    AcceptedEvent,
    Activity,
    BufferedCounter,
    DeadLetter,
    Event,
    FingerprintRuleVersion,
    GroupHash,
    Issue,
    IssueRedirect,
    KVOrphanCandidate,
    Project,
    RegroupRun,
    Rollup,
    ScheduledDeletion,
)
from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.groups import delete_issue

if TYPE_CHECKING:
    from eventpipe.kvstore import KeyValueStore

CHUNK = 1000
ORPHAN_GRACE_HOURS = 168.0  # a week: dead-lettered events keep their bodies for replay that long
DEAD_LETTER_DAYS = 14.0
BODY_KEY = re.compile(r"^(\d+)/[0-9a-f]{32}$")


# retention ----------------------------------------------------------------------------------------
def retention_cutoff(project: Project, now: datetime) -> datetime:
    return now - timedelta(days=project.retention_days)


def expired_counts(db: Database, *, now: datetime | None = None) -> dict[int, int]:
    """Per project, how many stored events are past its retention (for --dry-run)."""
    now = now or utcnow()
    out = {}
    with db.session() as s:
        for project in s.scalars(select(Project).order_by(Project.id)):
            out[project.id] = s.scalar(
                select(func.count()).select_from(Event).where(
                    Event.project_id == project.id, Event.timestamp < retention_cutoff(project, now)
                )
            ) or 0
    return out


@task("cleanup.retention_sweep", queue="cleanup", max_retries=3, every="1h", schedule={"expires_s": 3000})
def retention_sweep(ctx: TaskContext) -> int:
    """Enqueue ``cleanup.retention_project`` for every project."""
    with ctx.db.session() as s:
        ids = list(s.scalars(select(Project.id).order_by(Project.id)))
    for pid in ids:
        retention_project.send(ctx, project_id=pid)
    return len(ids)


@task("cleanup.retention_project", queue="cleanup", max_retries=10)
def retention_project(ctx: TaskContext, *, project_id: int, chunk: int = CHUNK) -> int:
    """Delete one chunk of the project's events older than its ``retention_days`` (rows, then
    bodies); when none are left, drop its issues that have no events and were last seen before
    the cutoff, and its ingest dedupe records older than the cutoff."""
    now = utcnow()
    with ctx.db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            return 0
        cutoff = retention_cutoff(project, now)
        rows = s.execute(
            select(Event.id, Event.kv_key)
            .where(Event.project_id == project_id, Event.timestamp < cutoff)
            .order_by(Event.id)
            .limit(chunk)
        ).all()
        if rows:
            s.execute(delete(Event).where(Event.id.in_([r.id for r in rows])))
    if rows:
        ctx.store.delete_many([r.kv_key for r in rows])
        if len(rows) == chunk:
            retention_project.send(ctx, project_id=project_id, chunk=chunk)
            return len(rows)
    with ctx.db.session() as s:
        stale = list(
            s.scalars(
                select(Issue.id)
                .where(Issue.project_id == project_id, Issue.last_seen < cutoff, Issue.status.not_in(("pending_merge", "pending_deletion")))
                .where(~select(Event.id).where(Event.issue_id == Issue.id).exists())
                .where(~select(BufferedCounter.id).where(BufferedCounter.issue_id == Issue.id).exists())
                .limit(chunk)
            )
        )
        for issue_id in stale:
            delete_issue_rows(s, issue_id)
        s.execute(delete(AcceptedEvent).where(AcceptedEvent.project_id == project_id, AcceptedEvent.accepted_at < cutoff))
    return len(rows)


# projects -----------------------------------------------------------------------------------------
def start_delete_project(ctx: TaskContext, project_id: int, *, actor: str, chunk: int = CHUNK) -> dict[str, Any]:
    """Record the deletion (the project stops accepting events: its ingest key is revoked) and
    enqueue ``cleanup.delete_project``."""
    now = utcnow()
    with ctx.db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise InvalidIssueAction(f"no project {project_id}; see `eventpipe projects list`")
        project.ingest_key = f"deleted-{project_id}"
        if s.scalar(select(ScheduledDeletion.id).where(ScheduledDeletion.kind == "project", ScheduledDeletion.object_id == project_id)) is None:
            s.add(ScheduledDeletion(kind="project", object_id=project_id, project_id=project_id, actor=actor, created_at=now, last_enqueued_at=now))
    delete_project.send(ctx, project_id=project_id, chunk=chunk)
    return {"project_id": project_id, "status": "pending_deletion"}


@task("cleanup.delete_project", queue="cleanup", max_retries=10)
def delete_project(ctx: TaskContext, *, project_id: int, chunk: int = CHUNK) -> bool:
    """Delete a project chunk by chunk: event rows then bodies, then every other row it owns,
    then bodies left under its key prefix (events that never got a row), then the project."""
    with ctx.db.session() as s:
        rows = s.execute(select(Event.id, Event.kv_key).where(Event.project_id == project_id).order_by(Event.id).limit(chunk)).all()
        if rows:
            s.execute(delete(Event).where(Event.id.in_([r.id for r in rows])))
    if rows:
        ctx.store.delete_many([r.kv_key for r in rows])
        delete_project.send(ctx, project_id=project_id, chunk=chunk)
        return False
    leftovers = list(_take(ctx.store.keys(f"{project_id}/"), chunk))
    if leftovers:
        ctx.store.delete_many(leftovers)
        delete_project.send(ctx, project_id=project_id, chunk=chunk)
        return False
    with ctx.db.session() as s:
        if s.scalar(select(Event.id).where(Event.project_id == project_id).limit(1)) is not None:
            delete_project.send(ctx, project_id=project_id, chunk=chunk)
            return False
        issue_ids = select(Issue.id).where(Issue.project_id == project_id)
        for model in (BufferedCounter, Activity, GroupHash, Rollup, IssueRedirect, AcceptedEvent, FingerprintRuleVersion, RegroupRun):
            s.execute(delete(model).where(model.project_id == project_id))  # type: ignore[attr-defined]
        s.execute(delete(BufferedCounter).where(BufferedCounter.issue_id.in_(issue_ids)))
        s.execute(delete(Issue).where(Issue.project_id == project_id))
        s.execute(delete(Project).where(Project.id == project_id))
        s.execute(
            update(ScheduledDeletion)
            .where(ScheduledDeletion.project_id == project_id, ScheduledDeletion.done_at.is_(None))
            .values(done_at=utcnow())
        )
    return True


def _take(keys: Iterator[str], n: int) -> Iterator[str]:
    for i, key in enumerate(keys):
        if i >= n:
            return
        yield key


@task("cleanup.run_scheduled_deletions", queue="cleanup", max_retries=3, every="5m", schedule={"expires_s": 280})
def run_scheduled_deletions(ctx: TaskContext, *, stale_minutes: float = 10.0) -> int:
    """Re-send deletions not finished and not (re)enqueued for ``stale_minutes``: a lost message or
    a task that died after its retries does not leave a half-deleted issue or project."""
    now = utcnow()
    with ctx.db.session() as s:
        due = s.execute(
            select(ScheduledDeletion.id, ScheduledDeletion.kind, ScheduledDeletion.object_id)
            .where(ScheduledDeletion.done_at.is_(None), ScheduledDeletion.last_enqueued_at < now - timedelta(minutes=stale_minutes))
            .order_by(ScheduledDeletion.id)
            .limit(1000)
        ).all()
        if due:
            s.execute(update(ScheduledDeletion).where(ScheduledDeletion.id.in_([d.id for d in due])).values(last_enqueued_at=now))
    for d in due:
        if d.kind == "issue":
            delete_issue.send(ctx, issue_id=d.object_id)
        else:
            delete_project.send(ctx, project_id=d.object_id)
    return len(due)


# orphans and dead letters -------------------------------------------------------------------------
def scan_orphans(
    db: Database, store: KeyValueStore, *, grace: timedelta, now: datetime | None = None, dry_run: bool = False, batch: int = CHUNK
) -> dict[str, int]:
    """Bodies with no event row: the first sighting records a candidate; a body still without a row
    ``grace`` after its first sighting is deleted. Keys not shaped like ``PROJECT/EVENT_ID``
    (bookkeeping, other tools' data) are never touched."""
    now = now or utcnow()
    stats = {"scanned": 0, "orphans": 0, "new_candidates": 0, "deleted": 0}
    keys = (k for k in store.keys() if BODY_KEY.match(k))
    while True:
        part = list(_take(keys, batch))
        if not part:
            return stats
        stats["scanned"] += len(part)
        with db.session() as s:
            with_rows = set(s.scalars(select(Event.kv_key).where(Event.kv_key.in_(part))))
            orphans = [k for k in part if k not in with_rows]
            stats["orphans"] += len(orphans)
            known = dict(s.execute(select(KVOrphanCandidate.key, KVOrphanCandidate.first_seen_at).where(KVOrphanCandidate.key.in_(part))).all())
            due = [k for k in orphans if k in known and known[k] <= now - grace]
            fresh = [k for k in orphans if k not in known]
            stats["new_candidates"] += len(fresh)
            stats["deleted"] += len(due)
            if dry_run:
                continue
            adopted = [k for k in known if k in with_rows]  # a row appeared: no longer an orphan
            if adopted or due:
                s.execute(delete(KVOrphanCandidate).where(KVOrphanCandidate.key.in_(adopted + due)))
            s.add_all(KVOrphanCandidate(key=k, first_seen_at=now) for k in fresh)
        if due and not dry_run:
            store.delete_many(due)


@task("cleanup.kv_orphans", queue="cleanup", max_retries=3, cron="20 3 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def kv_orphans(ctx: TaskContext, *, grace_hours: float = ORPHAN_GRACE_HOURS) -> dict[str, int]:
    """Delete bodies that have had no event row for ``grace_hours`` (leftovers of crashed deletes
    and of events never saved)."""
    return scan_orphans(ctx.db, ctx.store, grace=timedelta(hours=grace_hours))


def expire_dead_letters(db: Database, *, max_age: timedelta, now: datetime | None = None, dry_run: bool = False) -> int:
    cutoff = (now or utcnow()) - max_age
    with db.session() as s:
        if dry_run:
            return s.scalar(select(func.count()).select_from(DeadLetter).where(DeadLetter.failed_at < cutoff)) or 0
        return s.execute(delete(DeadLetter).where(DeadLetter.failed_at < cutoff)).rowcount or 0


@task("cleanup.dead_letters_expire", queue="cleanup", max_retries=3, cron="40 * * * *", schedule={"expires_s": 3000})
def dead_letters_expire(ctx: TaskContext, *, max_age_days: float = DEAD_LETTER_DAYS) -> int:
    """Drop recorded dead letters older than ``max_age_days`` (replay or inspect them before)."""
    return expire_dead_letters(ctx.db, max_age=timedelta(days=max_age_days))
