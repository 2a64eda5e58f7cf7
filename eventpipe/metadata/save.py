"""Saving a batch of processed events: set-based SQL, one transaction, idempotent.

Per batch, whatever its size: one lookup of the fingerprint hashes' issues (``group_hashes``),
one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` creating the issues of new hashes,
one for the event rows (``RETURNING`` says which events are new: a redelivered batch inserts and
counts nothing), one counter row per issue, one compare-and-set ``UPDATE`` flipping resolved issues
of new events to unresolved (the regression is recorded by the transaction that flips it, once),
the issues' title/culprit/level/last seen from their latest event ("latest wins", as the
reference system did), and the activity rows. The caller commits.

Works on SQLite (3.35+, for RETURNING) and Postgres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from eventpipe.metadata.models import Activity, BufferedCounter, Event, GroupHash, Issue
from eventpipe.pipeline.keys import body_key

_CHUNK = 400  # rows per multi-row statement: well under SQLite's 32,766 bound parameters


@dataclass(frozen=True)
class EventRow:
    """One processed event, as the save stage receives it."""

    project_id: int
    event_id: str
    fingerprint: str
    title: str
    culprit: str
    level: str
    platform: str
    timestamp: datetime
    received: datetime
    size: int


@dataclass(frozen=True)
class Handover:
    """An event post-processing must see: its issue and what happened (first_seen, regression)."""

    project_id: int
    event_id: str
    issue_id: int
    level: str
    kinds: tuple[str, ...]


@dataclass
class SaveOutcome:
    inserted: int = 0
    duplicates: int = 0
    issues_created: int = 0
    issue_of: dict[tuple[int, str], int] = field(default_factory=dict)  # (project, event) -> issue
    handovers: list[Handover] = field(default_factory=list)
    new: list[Handover] = field(default_factory=list)  # every event this batch inserted


def _insert(s: Session, table: Table) -> Any:
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def _chunks(rows: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(rows), _CHUNK):
        yield rows[start : start + _CHUNK]


def _hash_issues(s: Session, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for chunk in _chunks(keys):
        q = select(GroupHash.project_id, GroupHash.hash, GroupHash.issue_id).where(
            tuple_(GroupHash.project_id, GroupHash.hash).in_(list(chunk))
        )
        out.update({(p, h): i for p, h, i in s.connection().execute(q)})
    return out


def _create_issues(s: Session, rows_by_hash: dict[tuple[int, str], list[EventRow]]) -> set[int]:
    """Create issues for hashes no issue owns yet; returns the ids this transaction created."""
    issues = _insert(s, Issue.__table__)
    values = []
    for (project_id, fingerprint), rows in rows_by_hash.items():
        latest = max(rows, key=lambda r: r.timestamp)
        values.append(
            {
                "project_id": project_id,
                "fingerprint_hash": fingerprint,
                "title": latest.title[:512],
                "culprit": latest.culprit[:512],
                "level": latest.level,
                "status": "unresolved",
                "first_seen": min(r.timestamp for r in rows),
                "last_seen": latest.timestamp,
                "times_seen": 0,
            }
        )
    stmt = issues.on_conflict_do_nothing(index_elements=["project_id", "fingerprint_hash"]).returning(Issue.id)
    created = set(s.connection().execute(stmt, values).scalars())
    keys = list(rows_by_hash)
    found: list[dict[str, Any]] = []
    for chunk in _chunks(keys):
        q = select(Issue.id, Issue.project_id, Issue.fingerprint_hash).where(
            tuple_(Issue.project_id, Issue.fingerprint_hash).in_(list(chunk))
        )
        found += [{"project_id": p, "hash": h, "issue_id": i} for i, p, h in s.connection().execute(q)]
    hashes = _insert(s, GroupHash.__table__).on_conflict_do_nothing(index_elements=["project_id", "hash"])
    s.connection().execute(hashes, found)
    return created


_EVENT_COLUMNS = ("project_id", "event_id", "issue_id", "timestamp", "received_at", "kv_key", "size", "platform", "level", "fingerprint")
_PG_TYPES = ("int[]", "text[]", "bigint[]", "timestamp[]", "timestamp[]", "text[]", "int[]", "text[]", "text[]", "text[]")
# Postgres: one short statement with one array per column. A multi-row VALUES list of named
# parameters makes the driver parse a statement of thousands of placeholders per batch (the
# largest CPU cost of a save in the profile); arrays keep the statement text constant.
_PG_INSERT_EVENTS = text(
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:c{i} AS {t})' for i, t in enumerate(_PG_TYPES))}) "
    "ON CONFLICT (project_id, event_id) DO NOTHING RETURNING project_id, event_id"
)


def _insert_events(s: Session, event_rows: list[dict[str, Any]]) -> set[tuple[int, str]]:
    """Insert event rows once; returns the (project, event) pairs this call inserted."""
    if s.get_bind().dialect.name == "postgresql":
        params = {f"c{i}": [r[c] for r in event_rows] for i, c in enumerate(_EVENT_COLUMNS)}
        return {(p, e) for p, e in s.connection().execute(_PG_INSERT_EVENTS, params)}
    events = _insert(s, Event.__table__).on_conflict_do_nothing(index_elements=["project_id", "event_id"])
    result = s.connection().execute(events.returning(Event.project_id, Event.event_id), event_rows)
    return {(p, e) for p, e in result}


def save_events(s: Session, rows: Sequence[EventRow], now: datetime) -> SaveOutcome:
    """Save a batch of events in the caller's transaction (see the module docstring)."""
    out = SaveOutcome()
    unique: dict[tuple[int, str], EventRow] = {}
    for r in rows:
        unique.setdefault((r.project_id, r.event_id), r)
    rows = list(unique.values())
    by_hash: dict[tuple[int, str], list[EventRow]] = {}
    for r in rows:
        by_hash.setdefault((r.project_id, r.fingerprint), []).append(r)

    issue_of_hash = _hash_issues(s, list(by_hash))
    missing = {k: v for k, v in by_hash.items() if k not in issue_of_hash}
    created: set[int] = set()
    if missing:
        created = _create_issues(s, missing)
        issue_of_hash.update(_hash_issues(s, list(missing)))
        out.issues_created = len(created)

    event_rows = []
    for r in rows:
        issue_id = issue_of_hash[(r.project_id, r.fingerprint)]
        out.issue_of[(r.project_id, r.event_id)] = issue_id
        event_rows.append(
            {
                "project_id": r.project_id,
                "event_id": r.event_id,
                "issue_id": issue_id,
                "timestamp": r.timestamp,
                "received_at": r.received,
                "kv_key": body_key(r.project_id, r.event_id),
                "size": r.size,
                "platform": r.platform,
                "level": r.level,
                "fingerprint": r.fingerprint,
            }
        )
    inserted = _insert_events(s, event_rows)
    out.inserted = len(inserted)
    out.duplicates = len(rows) - len(inserted)

    new_rows = [r for r in rows if (r.project_id, r.event_id) in inserted]
    by_issue: dict[int, list[EventRow]] = {}
    for r in new_rows:
        by_issue.setdefault(out.issue_of[(r.project_id, r.event_id)], []).append(r)
    kinds: dict[tuple[int, str], list[str]] = {}
    if by_issue:
        s.connection().execute(
            insert(BufferedCounter.__table__),
            [
                {"project_id": rs[0].project_id, "issue_id": i, "delta": len(rs), "seen_at": max(r.timestamp for r in rs)}
                for i, rs in sorted(by_issue.items())
            ],
        )
        _learn(s, {i: rs for i, rs in by_issue.items() if i not in created})
        flipped = set(
            s.connection()
            .execute(
                update(Issue.__table__)
                .where(Issue.__table__.c.id.in_(sorted(by_issue)), Issue.__table__.c.status == "resolved")
                .values(status="unresolved", resolved_at=None)
                .returning(Issue.__table__.c.id)
            )
            .scalars()
        )
        for issue_id, rs in by_issue.items():
            first = min(rs, key=lambda r: (r.timestamp, r.event_id))
            if issue_id in created:
                kinds.setdefault((first.project_id, first.event_id), []).append("first_seen")
            if issue_id in flipped:
                kinds.setdefault((first.project_id, first.event_id), []).append("regression")
    if kinds:
        activity = _insert(s, Activity.__table__).on_conflict_do_nothing(index_elements=["issue_id", "kind", "event_id"])
        values = [
            {"project_id": p, "issue_id": out.issue_of[(p, e)], "kind": k, "event_id": e, "created_at": now}
            for (p, e), ks in kinds.items()
            for k in ks
        ]
        s.connection().execute(activity, values)
    level_of = {(r.project_id, r.event_id): r.level for r in rows}
    out.new = [Handover(r.project_id, r.event_id, out.issue_of[(r.project_id, r.event_id)], r.level, ()) for r in new_rows]
    for (p, e), ks in kinds.items():
        out.handovers.append(Handover(p, e, out.issue_of[(p, e)], level_of[(p, e)], tuple(ks)))
    dups = [(p, e) for (p, e) in unique if (p, e) not in inserted]
    if dups:
        # A redelivered batch may have crashed before its handover last time: hand over again the
        # events whose activity was not yet marked notified (post-processing is idempotent).
        pending: dict[tuple[int, str], list[str]] = {}
        for chunk in _chunks(dups):
            q = select(Activity.project_id, Activity.event_id, Activity.kind).where(
                tuple_(Activity.project_id, Activity.event_id).in_(list(chunk)), Activity.notified_at.is_(None)
            )
            for p, e, k in s.connection().execute(q):
                pending.setdefault((p, e), []).append(k)
        for (p, e), ks in pending.items():
            out.handovers.append(Handover(p, e, out.issue_of[(p, e)], level_of[(p, e)], tuple(sorted(ks))))
    return out


def _learn(s: Session, by_issue: dict[int, list[EventRow]]) -> None:
    """Existing issues take title, culprit and level from their latest event (if it is newer
    than what they have seen), as the reference system did; ordered by id against deadlocks."""
    if not by_issue:
        return
    params = []
    for issue_id, rs in sorted(by_issue.items()):
        latest = max(rs, key=lambda r: r.timestamp)
        params.append(
            {"b_id": issue_id, "b_ts": latest.timestamp, "b_title": latest.title[:512], "b_culprit": latest.culprit[:512], "b_level": latest.level}
        )
    stmt = (
        update(Issue.__table__)
        .where(and_(Issue.__table__.c.id == bindparam("b_id"), Issue.__table__.c.last_seen <= bindparam("b_ts")))
        .values(
            title=bindparam("b_title"), culprit=bindparam("b_culprit"), level=bindparam("b_level"), last_seen=bindparam("b_ts")
        )
    )
    s.connection().execute(stmt, params)
