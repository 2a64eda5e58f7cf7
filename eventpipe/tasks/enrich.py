"""Enrichment of saved events: affected users and tag values per issue.

``events.save`` hands over, in one batch message per save batch, the newly inserted events that
carry a user or tags (the user hash and tag pairs were computed by ``events.process``, so these
tasks read no bodies). ``events.record_user`` keeps the set of (issue, user hash): recording a
user twice changes nothing. ``events.index_tags`` counts tag values per issue and marks each
event counted in the same transaction (``event_indexed``), so a redelivered batch counts nothing
twice; two workers racing on one batch conflict on that mark and one retries into a no-op.
``cleanup.enrichment_orphans`` drops the rows of deleted issues; rows of an issue merged into
another stay where they are and count for the surviving issue (``users_per_issue``, ``tag_values``
follow the redirects), so a merge moves no enrichment rows.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import (
    EventIndexed,
    Issue,
    IssueRedirect,
    IssueTagValue,
    IssueUser,
    Project,
)
from eventpipe.metadata.repo import insert_ignore
from eventpipe.tasks.api import Item, TaskContext, task


def _dt(ts: float | None) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None) if ts is not None else utcnow()


@task("events.record_user", queue="events.enrich", batch=True, batch_size=500, max_retries=10)
def record_user(ctx: TaskContext, items: list[Item]) -> int:
    """Record each event's affected user on its issue (a set: idempotent); returns rows offered."""
    rows = {
        (it["issue_id"], it["user_hash"]): {
            "issue_id": it["issue_id"],
            "user_hash": it["user_hash"],
            "project_id": it["project_id"],
            "first_seen": _dt(it.get("timestamp")),
        }
        for it in items
        if it.get("user_hash")
    }
    if rows:
        with ctx.db.session() as s:
            insert_ignore(s, IssueUser, list(rows.values()), ["issue_id", "user_hash"])
    return len(rows)


def _upsert_tags(s: Any, rows: list[dict[str, Any]]) -> None:
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert

        later, earlier = func.greatest, func.least
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert

        later, earlier = func.max, func.min
    table = IssueTagValue.__table__
    stmt = dialect_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["issue_id", "key", "value"],
        set_={
            "times_seen": table.c.times_seen + stmt.excluded.times_seen,
            "first_seen": earlier(table.c.first_seen, stmt.excluded.first_seen),
            "last_seen": later(table.c.last_seen, stmt.excluded.last_seen),
        },
    )
    # One constant statement for the whole batch: the rows were aggregated per (issue, key,
    # value), so no two rows of it hit the same key (which ON CONFLICT DO UPDATE would refuse).
    s.connection().execute(stmt, rows)


@task("events.index_tags", queue="events.enrich", batch=True, batch_size=500, max_retries=10)
def index_tags(ctx: TaskContext, items: list[Item]) -> int:
    """Count tag values per issue, once per event; returns the events counted by this call."""
    wanted = {(it["project_id"], it["event_id"]): it for it in items if it.get("tags")}
    if not wanted:
        return 0
    with ctx.db.session() as s:
        done = {
            (p, e)
            for p, e in s.execute(
                select(EventIndexed.project_id, EventIndexed.event_id).where(
                    EventIndexed.kind == "tags", tuple_(EventIndexed.project_id, EventIndexed.event_id).in_(list(wanted))
                )
            ).all()
        }
        todo = [it for key, it in wanted.items() if key not in done]
        if not todo:
            return 0
        # A plain insert: a concurrent run of the same batch conflicts here and retries into a no-op.
        s.connection().execute(
            insert(EventIndexed.__table__),
            [{"project_id": it["project_id"], "event_id": it["event_id"], "kind": "tags", "issue_id": it["issue_id"]} for it in todo],
        )
        agg: dict[tuple[int, str, str], dict[str, Any]] = {}
        for it in todo:
            seen = _dt(it.get("timestamp"))
            for key, value in it["tags"]:
                row = agg.setdefault(
                    (it["issue_id"], key, value),
                    {"issue_id": it["issue_id"], "key": key, "value": value, "project_id": it["project_id"],
                     "times_seen": 0, "first_seen": seen, "last_seen": seen},
                )
                row["times_seen"] += 1
                row["first_seen"] = min(row["first_seen"], seen)
                row["last_seen"] = max(row["last_seen"], seen)
        _upsert_tags(s, [agg[k] for k in sorted(agg)])
    return len(todo)


def _members(s: Any, issue_ids: list[int]) -> dict[int, list[int]]:
    """Each issue with the ids merged into it (their users and tags count for it)."""
    members: dict[int, list[int]] = {i: [i] for i in issue_ids}
    for src, target in s.execute(select(IssueRedirect.issue_id, IssueRedirect.target_id).where(IssueRedirect.target_id.in_(issue_ids))).all():
        members[target].append(src)
    return members


def users_per_issue(db: Database, issue_ids: list[int]) -> dict[int, int]:
    """Affected users per issue, merged-in issues included (0 for issues with none recorded)."""
    if not issue_ids:
        return {}
    with db.session() as s:
        members = _members(s, issue_ids)
        plain = [i for i, m in members.items() if len(m) == 1]
        counts: dict[int, int] = {i: 0 for i in issue_ids}
        if plain:
            for i, c in s.execute(
                select(IssueUser.issue_id, func.count()).where(IssueUser.issue_id.in_(plain)).group_by(IssueUser.issue_id)
            ).all():
                counts[i] = int(c)
        for i, m in members.items():
            if len(m) > 1:
                counts[i] = int(s.scalar(select(func.count(func.distinct(IssueUser.user_hash))).where(IssueUser.issue_id.in_(m))) or 0)
    return counts


def tag_values(db: Database, issue_id: int, *, top: int = 10) -> dict[str, list[dict[str, Any]]]:
    """The most frequent values of each tag key of an issue (merged-in issues included)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with db.session() as s:
        ids = _members(s, [issue_id])[issue_id]
        total = func.sum(IssueTagValue.times_seen)
        rows = s.execute(
            select(IssueTagValue.key, IssueTagValue.value, total)
            .where(IssueTagValue.issue_id.in_(ids))
            .group_by(IssueTagValue.key, IssueTagValue.value)
            .order_by(IssueTagValue.key, total.desc(), IssueTagValue.value)
        ).all()
    for key, value, count in rows:
        if len(out[key]) < top:
            out[key].append({"value": value, "count": int(count)})
    return dict(out)


@task("cleanup.enrichment_orphans", queue="cleanup", max_retries=3, cron="50 3 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def enrichment_orphans(ctx: TaskContext) -> dict[str, int]:
    """Drop affected-user, tag-value and indexed-event rows of issues that no longer exist
    (deleted). Rows of issues merged into another stay: they count for the surviving issue."""
    live = select(Issue.id).union(select(IssueRedirect.issue_id))
    out: dict[str, int] = {}
    with ctx.db.session() as s:
        for name, model in (("users", IssueUser), ("tag_values", IssueTagValue), ("indexed", EventIndexed)):
            out[name] = s.execute(delete(model).where(model.issue_id.not_in(live))).rowcount or 0
    return out


@task("cleanup.tag_values_expire", queue="cleanup", max_retries=3, cron="55 3 * * *", schedule={"expires_s": 6 * 3600, "catch_up": "once"})
def tag_values_expire(ctx: TaskContext) -> int:
    """Drop tag values not seen within their project's retention (the events that carried them
    are gone, so their counts describe nothing that can still be opened); returns rows deleted."""
    now = utcnow()
    deleted = 0
    with ctx.db.session() as s:
        for project_id, days in s.execute(select(Project.id, Project.retention_days)).all():
            deleted += s.execute(
                delete(IssueTagValue).where(IssueTagValue.project_id == project_id, IssueTagValue.last_seen < now - timedelta(days=days))
            ).rowcount or 0
    return deleted
