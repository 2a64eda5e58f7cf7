"""Regroup a project: re-fingerprint every stored event from its body under the project's current
fingerprint rules and move events whose issue changes.

A run is a row (``regroup_runs``) holding a cursor, the last event row id done, and the counts.
``groups.regroup`` handles one chunk per message: it reads the run under a row lock, works only if
the message's ``after_id`` equals the stored cursor (a redelivered or duplicated message finds the
cursor moved on and does nothing), moves the chunk's events and advances the cursor in the same
transaction, then enqueues the next chunk. A crashed run is resumed with ``resume_regroup``.

Issues left with no events are "merged away": folded into the issue that received most of their
events (counts, rollups and activity move, the id redirects) and their hashes dropped, so a later
rules change can give those hashes an issue of their own again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, update

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.grouping_rules import current_version, rules_at
from eventpipe.metadata.issue_moves import adjust_counts, fold_into, issue_for_hash, move_events, recompute_seen, widen_seen
from eventpipe.metadata.issues import InvalidIssueAction, record_activity
from eventpipe.metadata.models import Event, GroupHash, Issue, Project, RegroupRun
from eventpipe.pipeline.fingerprint_rules import grouping_hash
from eventpipe.pipeline.grouping import title_and_culprit
from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.rollups import recompute_project

CHUNK = 500
MAX_PASSES = 5


def run_summary(run: RegroupRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "project_id": run.project_id,
        "rules_version": run.rules_version,
        "status": run.status,
        "total": run.total,
        "events_read": run.events_read,
        "events_moved": run.events_moved,
        "bodies_missing": run.bodies_missing,
        "issues_created": run.issues_created,
        "merged_away": run.merged_away,
        "passes": run.passes,
    }


def start_regroup(ctx: TaskContext, project_id: int, *, actor: str, chunk: int = CHUNK) -> dict[str, Any]:
    """Start a run under the project's current rules (refused while another run is going)."""
    with ctx.db.session() as s:
        if s.get(Project, project_id, with_for_update=True) is None:
            raise InvalidIssueAction(f"no project {project_id}; see `eventpipe projects list`")
        running = s.scalar(select(RegroupRun.id).where(RegroupRun.project_id == project_id, RegroupRun.status == "running"))
        if running is not None:
            raise InvalidIssueAction(
                f"regroup run {running} of project {project_id} is still going; "
                f"wait for it or resume it with `eventpipe issues regroup --project {project_id} --resume`"
            )
        total = s.scalar(select(func.count()).select_from(Event).where(Event.project_id == project_id)) or 0
        run = RegroupRun(
            project_id=project_id, rules_version=current_version(s, project_id), cursor=0, total=total, events_read=0,
            events_moved=0, bodies_missing=0, issues_created=0, merged_away=0, passes=1, conflicts=0, touched={}, status="running", started_at=utcnow(), updated_at=utcnow(),
        )
        s.add(run)
        s.flush()
        summary = run_summary(run)
    summary["actor"] = actor
    regroup.send(ctx, run_id=summary["run_id"], after_id=0, chunk=chunk)
    return summary


def resume_regroup(ctx: TaskContext, project_id: int, *, chunk: int = CHUNK) -> dict[str, Any]:
    """Re-send the next chunk of the project's unfinished run (after a lost message or crash)."""
    with ctx.db.session() as s:
        run = s.scalar(select(RegroupRun).where(RegroupRun.project_id == project_id, RegroupRun.status == "running"))
        if run is None:
            raise InvalidIssueAction(f"project {project_id} has no unfinished regroup run; start one without --resume")
        summary = run_summary(run)
        cursor = run.cursor
    regroup.send(ctx, run_id=summary["run_id"], after_id=cursor, chunk=chunk)
    return summary


def regroup_status(ctx: TaskContext, run_id: int) -> dict[str, Any]:
    with ctx.db.session() as s:
        run = s.get(RegroupRun, run_id)
        if run is None:
            raise InvalidIssueAction(f"no regroup run {run_id}")
        return run_summary(run)


@task("groups.regroup", queue="groups", max_retries=10)
def regroup(ctx: TaskContext, *, run_id: int, after_id: int, chunk: int = CHUNK) -> None:
    """Re-fingerprint one chunk of a project's events under its rules and move the ones whose
    issue changes; then enqueue the next chunk, or finish the run."""
    with ctx.db.session() as s:
        run = s.get(RegroupRun, run_id, with_for_update=True)
        if run is None or run.status != "running" or run.cursor != after_id:
            return  # finished, or a stale duplicate of a chunk already done
        rules = rules_at(s, run.project_id, run.rules_version)
        rows = s.execute(
            select(Event.id, Event.issue_id, Event.fingerprint, Event.kv_key, Event.timestamp, Event.level)
            .where(Event.project_id == run.project_id, Event.id > after_id)
            .order_by(Event.id)
            .limit(chunk)
        ).all()
        project_id = run.project_id
        again = not rows and run.conflicts > 0 and run.passes < MAX_PASSES
        if again:
            # events changed issue under this pass (a merge or unmerge ran meanwhile): go over
            # the project once more; events already in place cost a body read and nothing else
            s.execute(
                update(RegroupRun)
                .where(RegroupRun.id == run.id)
                .values(cursor=0, conflicts=0, passes=run.passes + 1, updated_at=utcnow())
            )
        elif not rows:
            _finish(s, run)
        else:
            _chunk(ctx, s, run, rows, rules)
    if again:
        regroup.send(ctx, run_id=run_id, after_id=0, chunk=chunk)
    elif not rows:
        recompute_project(ctx.db, project_id)  # rollups follow the moved events
    else:
        regroup.send(ctx, run_id=run_id, after_id=rows[-1].id, chunk=chunk)


def _chunk(ctx: TaskContext, s: Any, run: RegroupRun, rows: list[Any], rules: Any) -> None:
    """Move one chunk's events and advance the run, in the caller's transaction."""
    bodies = ctx.store.get_many([r.kv_key for r in rows])
    owners: dict[str, int | None] = {}
    moves: dict[tuple[int, int, str], list[int]] = defaultdict(list)  # (from, to, hash) -> event row ids
    spans: dict[int, list[Any]] = {}
    touched: dict[str, dict[str, int]] = {k: dict(v) for k, v in (run.touched or {}).items()}
    missing = created = 0
    for r in rows:
        raw = bodies.get(r.kv_key)
        if raw is None:
            missing += 1
            continue
        body = orjson.loads(raw)
        h = grouping_hash(body, rules)
        if h not in owners:
            owners[h] = s.scalar(select(GroupHash.issue_id).where(GroupHash.project_id == run.project_id, GroupHash.hash == h))
        target = owners[h]
        if target is None:
            title, culprit = title_and_culprit(body)
            target, was_created = issue_for_hash(
                s, run.project_id, h, title=title, culprit=culprit, level=body.get("level", r.level), ts=r.timestamp
            )
            owners[h] = target
            created += int(was_created)
        if target == r.issue_id and h == r.fingerprint:
            continue
        moves[(r.issue_id, target, h)].append(r.id)
        if target != r.issue_id:
            span = spans.setdefault(target, [r.timestamp, r.timestamp])
            span[0], span[1] = min(span[0], r.timestamp), max(span[1], r.timestamp)
    deltas: dict[int, int] = defaultdict(int)
    moved = conflicts = 0
    for (old, target, h), ids in moves.items():
        n = move_events(s, ids, target, from_issue=old, fingerprint=h)
        conflicts += len(ids) - n
        if target != old and n:
            moved += n
            deltas[old] -= n
            deltas[target] += n
            per = touched.setdefault(str(old), {})
            per[str(target)] = per.get(str(target), 0) + n
    adjust_counts(s, deltas)
    for target, (first, last) in spans.items():
        widen_seen(s, target, first, last)
    s.execute(
        update(RegroupRun)
        .where(RegroupRun.id == run.id)
        .values(
            cursor=rows[-1].id,
            events_read=RegroupRun.events_read + len(rows),
            events_moved=RegroupRun.events_moved + moved,
            bodies_missing=RegroupRun.bodies_missing + missing,
            issues_created=RegroupRun.issues_created + created,
            touched=touched,
        )
    )


def _finish(s: Any, run: RegroupRun) -> None:
    """Fold issues left empty into the issue that took most of their events; recompute the
    seen-times of every issue that lost events and the project's rollups; close the run."""
    merged_away = 0
    for old, targets in sorted((run.touched or {}).items(), key=lambda kv: int(kv[0])):
        old_id = int(old)
        issue = s.get(Issue, old_id)
        if issue is None or issue.status in ("pending_merge", "pending_deletion"):
            continue
        if s.scalar(select(Event.id).where(Event.issue_id == old_id).limit(1)) is not None:
            recompute_seen(s, old_id)
            continue
        target = max(targets.items(), key=lambda kv: (kv[1], -int(kv[0])))[0]
        target_id = int(target)
        if s.get(Issue, target_id) is None:
            continue
        if fold_into(s, old_id, target_id, reason="regroup", keep_hashes=False):
            merged_away += 1
            record_activity(s, project_id=run.project_id, issue_id=target_id, kind="regroup", actor="system",
                            data={"run": run.id, "merged_away": old_id})
    s.execute(
        update(RegroupRun)
        .where(RegroupRun.id == run.id)
        .values(status="done", finished_at=utcnow(), updated_at=utcnow(), merged_away=merged_away)
    )


@task("groups.resume_stalled", queue="groups", max_retries=3, every="5m", schedule={"expires_s": 280})
def resume_stalled(ctx: TaskContext, *, stale_minutes: float = 10.0) -> dict[str, int]:
    """Re-send work whose message was lost (dead-lettered after its retries, a purged queue):
    regroup runs with no chunk done for ``stale_minutes`` get their next chunk again, merges
    whose source is still there that long after the merge get their merge again. Both tasks are
    idempotent, so re-sending work that is merely slow costs a duplicate message, nothing more."""
    from eventpipe.metadata.models import IssueRedirect
    from eventpipe.tasks.groups import merge

    cutoff = utcnow() - timedelta(minutes=stale_minutes)
    with ctx.db.session() as s:
        runs = s.execute(
            select(RegroupRun.id, RegroupRun.cursor).where(RegroupRun.status == "running", RegroupRun.updated_at < cutoff)
        ).all()
        if runs:
            s.execute(update(RegroupRun).where(RegroupRun.id.in_([r.id for r in runs])).values(updated_at=utcnow()))
        merges = s.execute(
            select(IssueRedirect.issue_id, IssueRedirect.target_id)
            .join(Issue, Issue.id == IssueRedirect.issue_id)
            .where(Issue.status == "pending_merge", IssueRedirect.created_at < cutoff)
        ).all()
        if merges:  # re-sent now: wait another period before re-sending again
            s.execute(update(IssueRedirect).where(IssueRedirect.issue_id.in_([m.issue_id for m in merges])).values(created_at=utcnow()))
    for r in runs:
        regroup.send(ctx, run_id=r.id, after_id=r.cursor)
    for m in merges:
        merge.send(ctx, target_id=m.target_id, source_ids=[m.issue_id])
    return {"regroups": len(runs), "merges": len(merges)}
