"""Notifications: alert rules evaluated per saved event, per-project email digests, signed webhooks.

The flow: ``notify.evaluate_rules`` (fed by ``events.post_process``) checks each project's rules
(:mod:`eventpipe.pipeline.conditions`), passes a per-rule per-issue throttle (compare-and-set in
SQL, so concurrent workers fire a rule once) and records what fired in the same transaction:
digest records for email, ``notification_sends`` rows for webhooks. ``notify.deliver_digest``
turns a project's pending records into one email per recipient (:mod:`eventpipe.pipeline.digests`)
when its timeline is due; ``notify.schedule_digests`` (every few seconds) finds due timelines and
re-sends work a crash left pending.

Irrevocable steps (:mod:`eventpipe.tasks.notify_send`) claim their ``notification_sends`` row
before talking to the remote and mark it sent after: a redelivered message finds the row claimed
or sent and does nothing. A crash between the remote accepting and the mark leaves the row
``sending`` and it is never retried: that step is at-most-once, by design.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import (
    AlertRule,
    Digest,
    DigestRecord,
    DigestTimeline,
    Event,
    Issue,
    NotificationSend,
    Project,
    Rollup,
    RuleFireState,
)
from eventpipe.metadata.repo import insert_ignore
from eventpipe.notify.rules import Rule, project_rules
from eventpipe.pipeline import conditions
from eventpipe.pipeline.digests import IssueFacts, RecordFacts, Timeline, build_digest, on_add, on_deliver, webhook_body
from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.notify_send import send_email, send_webhook

Runtime = TaskContext  # tasks only need the context's db, settings and enqueueing

# A never-attempted send still pending after this long lost its message (crash before enqueue).
STALE_PENDING = timedelta(seconds=30)


def _enqueue_sends(rt: Runtime, sends: Iterable[tuple[int, str]]) -> None:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for send_id, channel in sends:
        by_task["email" if channel == "email" else "webhook"].append({"send_id": send_id})
    for channel, kwargs in by_task.items():
        rt.enqueue_many(send_email if channel == "email" else send_webhook, kwargs)


# Rule evaluation ---------------------------------------------------------------------------------
@task("notify.evaluate_rules", queue="notify", batch=True, batch_size=500)
def evaluate_rules(ctx: TaskContext, items: list[dict[str, Any]]) -> None:
    """Check alert rules for saved events; record digest entries and webhook sends for those that fire.

    Each item: ``project_id``, ``issue_id``, ``event_id``, ``kinds`` (e.g. ``["first_seen"]``),
    ``level`` (the items ``events.post_process`` receives)."""
    evaluate(ctx, items)


def evaluate(rt: TaskContext, items: list[dict[str, Any]]) -> int:
    """:func:`evaluate_rules` returning how many (rule, event) pairs fired."""
    now = utcnow()
    candidates: list[tuple[Rule, dict[str, Any]]] = []
    for item in items:
        for rule in project_rules(rt.db, int(item["project_id"])):
            cond = rule.condition
            if not cond.per_event or not conditions.level_passes(rule.level, item.get("level", "error")):
                continue
            window = _window_count(rt, item, cond) if conditions.needs_window_count(cond) else None
            if conditions.matches(cond, rule.level, kinds=item.get("kinds", ()), level=item.get("level", "error"), window_count=window):
                candidates.append((rule, item))
    if not candidates:
        return 0
    fired, sends, touched = 0, [], set()
    # One lock order for every transaction (throttle rows by rule and issue, then timelines by
    # project), so concurrent batches on Postgres wait for each other instead of deadlocking.
    candidates.sort(key=lambda c: (c[0].id, int(c[1]["issue_id"]), str(c[1]["event_id"])))
    with rt.db.session() as s:
        winners = [(r, it) for r, it in candidates if claim_throttle(s, r.id, int(it["issue_id"]), now, r.throttle_minutes)]
        for rule, item in winners:
            issue_id = int(item["issue_id"])
            fired += 1
            kind = rule.condition.kind
            detail = {"event_id": item["event_id"], "level": item.get("level", "error")}
            if kind == "frequency":
                detail["window"] = f"{rule.condition.count}/{rule.condition.minutes}m"
            got, recorded = fan_out(rt, s, rule, issue_id, kind, str(item["event_id"]), detail, now)
            sends += got
            if recorded:
                touched.add(rule.project_id)
        ready = touch_timelines(rt, s, touched, now)
    _after_commit(rt, sends, ready)
    return fired


def _window_count(rt: Runtime, item: dict[str, Any], cond: conditions.Condition) -> int:
    since = utcnow() - timedelta(minutes=cond.minutes or 0)
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Event).where(Event.issue_id == int(item["issue_id"]), Event.received_at >= since)) or 0)


def claim_throttle(s: Session, rule_id: int, issue_id: int, now: datetime, throttle_minutes: int) -> bool:
    """Compare-and-set: True for exactly one caller per throttle window (rule, issue). Throttle 0
    means every notification fires (repeats are caught by the unique keys of what fan_out writes)."""
    if throttle_minutes <= 0:
        return True
    if insert_ignore(s, RuleFireState, [{"rule_id": rule_id, "issue_id": issue_id, "last_fired_at": now, "fired": 1}], ["rule_id", "issue_id"]) == 1:
        return True
    cutoff = conditions.throttle_cutoff(now, throttle_minutes)
    won = s.execute(
        update(RuleFireState)
        .where(RuleFireState.rule_id == rule_id, RuleFireState.issue_id == issue_id, RuleFireState.last_fired_at <= cutoff)
        .values(last_fired_at=now, fired=RuleFireState.fired + 1)
    ).rowcount
    return won == 1


def fan_out(
    rt: Runtime, s: Session, rule: Rule, issue_id: int, kind: str, ref: str, detail: dict[str, Any], now: datetime
) -> tuple[list[tuple[int, str]], bool]:
    """Record one notification of ``rule``: a digest record for its emails, a pending send per
    webhook. Unique keys make a repeat a no-op. Returns (pending sends, digest record written);
    the caller then moves the timelines of the projects that got records (:func:`touch_timelines`)."""
    recorded = False
    if rule.emails:
        row = {"project_id": rule.project_id, "rule_id": rule.id, "issue_id": issue_id, "kind": kind, "ref": ref[:64],
               "detail": detail, "created_at": now, "digest_id": None}
        recorded = bool(insert_ignore(s, DigestRecord, [row], ["rule_id", "issue_id", "kind", "ref"]))
    sends: list[tuple[int, str]] = []
    if rule.webhooks:
        facts = issue_facts(s, [issue_id]).get(issue_id)
        body = webhook_body(rule.project_id, rule.id, kind, facts, ref, detail)
        for url in rule.webhooks:
            key = f"webhook:{rule.id}:{issue_id}:{kind}:{ref}:{hashlib.sha1(url.encode()).hexdigest()[:12]}"
            insert_ignore(s, NotificationSend, [{"key": key[:255], "channel": "webhook", "project_id": rule.project_id,
                                                 "target": url, "payload": body, "status": "pending", "attempts": 0,
                                                 "last_error": "", "created_at": now}], ["key"])
            row_id = s.scalar(select(NotificationSend.id).where(NotificationSend.key == key[:255], NotificationSend.status == "pending"))
            if row_id is not None:
                sends.append((row_id, "webhook"))
    return sends, recorded


def touch_timelines(rt: Runtime, s: Session, projects: Iterable[int], now: datetime) -> set[int]:
    """A batch's new records reschedule each project's digest once (projects in id order);
    returns the projects that became ready."""
    minimum, maximum = rt.settings.digest_delay_seconds, rt.settings.digest_max_delay_seconds
    return {p for p in sorted(projects) if timeline_add(s, p, now, minimum, maximum)}


def _after_commit(rt: Runtime, sends: Sequence[tuple[int, str]], ready_projects: Iterable[int]) -> None:
    _enqueue_sends(rt, sends)
    ready = [{"project_id": p} for p in sorted(ready_projects)]
    if ready:  # an idle project's first notification is delivered at once, not at the next tick
        rt.enqueue_many(deliver_digest, ready)


def timeline_add(s: Session, project_id: int, now: datetime, minimum: float, maximum: float) -> bool:
    """Apply :func:`on_add` under the timeline row's lock; True when the project became ready."""
    row = s.scalars(select(DigestTimeline).where(DigestTimeline.project_id == project_id).with_for_update()).one_or_none()
    if row is None:
        new = on_add(None, now, minimum, maximum)
        if insert_ignore(s, DigestTimeline, [{"project_id": project_id, "state": new.state, "due_at": new.due_at, "last_processed_at": None}], ["project_id"]):
            return True
        row = s.scalars(select(DigestTimeline).where(DigestTimeline.project_id == project_id).with_for_update()).one()
    new = on_add(Timeline(row.state, row.due_at, row.last_processed_at), now, minimum, maximum)
    row.state, row.due_at = new.state, new.due_at
    return False


def issue_facts(s: Session, issue_ids: Sequence[int]) -> dict[int, IssueFacts]:
    ids = [i for i in issue_ids if i]
    if not ids:
        return {}
    counts = dict(s.execute(select(Event.issue_id, func.count()).where(Event.issue_id.in_(ids)).group_by(Event.issue_id)).all())
    return {
        r.id: IssueFacts(r.id, r.title, r.culprit, r.level, r.status, int(counts.get(r.id, 0)))
        for r in s.execute(select(Issue.id, Issue.title, Issue.culprit, Issue.level, Issue.status).where(Issue.id.in_(ids)))
    }


# Digests -----------------------------------------------------------------------------------------
@task("notify.schedule_digests", queue="notify", every="5s", schedule={"expires_s": 15})
def schedule_digests(rt: Runtime) -> dict[str, int]:
    """Enqueue delivery of every due digest; re-send sends a crash left pending (periodic, seconds)."""
    now = utcnow()
    stale_retry = now - STALE_PENDING - timedelta(milliseconds=rt.settings.max_backoff_ms)
    with rt.db.session() as s:
        due = list(s.scalars(select(DigestTimeline.project_id).where(DigestTimeline.due_at <= now)))
        stuck = s.execute(
            select(NotificationSend.id, NotificationSend.channel).where(
                NotificationSend.status == "pending",
                or_(
                    and_(NotificationSend.claimed_at.is_(None), NotificationSend.created_at < now - STALE_PENDING),
                    NotificationSend.claimed_at < stale_retry,
                ),
            ).limit(1000)
        ).all()
    if due:
        rt.enqueue_many(deliver_digest, [{"project_id": p} for p in due])
    _enqueue_sends(rt, stuck)
    return {"due": len(due), "resent": len(stuck)}


@task("notify.deliver_digest", queue="notify")
def deliver_digest(rt: Runtime, *, project_id: int) -> int:
    """Take a due project's pending records into one digest and record one email per recipient.

    Runs under the timeline row's lock, so concurrent or repeated deliveries of one window make
    one digest. Returns the number of emails recorded."""
    now = utcnow()
    minimum = rt.settings.digest_delay_seconds
    sends: list[tuple[int, str]] = []
    with rt.db.session() as s:
        tl = s.scalars(select(DigestTimeline).where(DigestTimeline.project_id == project_id).with_for_update()).one_or_none()
        if tl is None or tl.due_at > now:
            return 0
        records = list(s.scalars(select(DigestRecord).where(DigestRecord.project_id == project_id, DigestRecord.digest_id.is_(None)).order_by(DigestRecord.id)))
        nxt = on_deliver(now, minimum, delivered=len(records), still_pending=0)
        if nxt is None:
            s.delete(tl)
            return 0
        tl.state, tl.due_at, tl.last_processed_at = nxt.state, nxt.due_at, nxt.last_processed_at
        digest = Digest(project_id=project_id, created_at=now, records=len(records), issues=len({r.issue_id for r in records}))
        s.add(digest)
        s.flush()
        ids = [r.id for r in records]
        for i in range(0, len(ids), 500):
            s.execute(update(DigestRecord).where(DigestRecord.id.in_(ids[i : i + 500])).values(digest_id=digest.id))
        facts = [RecordFacts(r.rule_id, r.issue_id, r.kind, r.detail or {}) for r in records]
        rules = {r.id: list(r.emails or []) for r in s.scalars(select(AlertRule).where(AlertRule.id.in_({r.rule_id for r in records})))}
        project = s.get(Project, project_id)
        messages = build_digest(project.name if project else str(project_id), facts, issue_facts(s, [r.issue_id for r in records]), rules)
        for m in messages:
            row = NotificationSend(key=f"digest:{digest.id}:{m.recipient}"[:255], channel="email", project_id=project_id,
                                   target=m.recipient, payload=m.as_payload(), status="pending", attempts=0, last_error="", created_at=now)
            s.add(row)
            s.flush()
            sends.append((row.id, "email"))
    _enqueue_sends(rt, sends)
    return len(sends)


# Activity and spikes -----------------------------------------------------------------------------
@task("notify.send_activity", queue="notify")
def send_activity(rt: Runtime, *, project_id: int, issue_id: int, kind: str, key: str, detail: dict[str, Any] | None = None) -> int:
    """Notify every rule of the project of an issue activity (resolved, regression, merged…)
    through the digest and webhook path; ``key`` makes a repeat of one activity a no-op."""
    now = utcnow()
    sends: list[tuple[int, str]] = []
    recorded = False
    rules = project_rules(rt.db, project_id)
    with rt.db.session() as s:
        for rule in rules:
            got, new = fan_out(rt, s, rule, issue_id, kind, key, dict(detail or {}), now)
            sends += got
            recorded = recorded or new
        ready = touch_timelines(rt, s, [project_id] if recorded else [], now)
    _after_commit(rt, sends, ready)
    return len(rules)


@task("notify.spike_alert", queue="notify", every="1m", schedule={"expires_s": 90})
def spike_alert(rt: Runtime) -> int:
    """Fire ``spike:N/MINUTES`` rules whose project had at least N events in the window, read from
    rollups (minute buckets when present, else the hour buckets overlapping the window)."""
    now = utcnow()
    fired, sends, touched = 0, [], set()
    with rt.db.session() as s:
        rules = list(s.scalars(select(AlertRule).where(AlertRule.when == "spike").order_by(AlertRule.id)))
        for row in rules:
            minutes = row.minutes or 60
            count = _project_volume(s, row.project_id, now - timedelta(minutes=minutes))
            rule = Rule(row.id, row.project_id, conditions.Condition("spike", row.count, row.minutes), row.level,
                        tuple(row.emails or ()), tuple(row.webhooks or ()), row.throttle_minutes)
            if not conditions.spike_exceeded(rule.condition, count) or not claim_throttle(s, rule.id, 0, now, rule.throttle_minutes):
                continue
            fired += 1
            got, recorded = fan_out(rt, s, rule, 0, "spike", f"spike:{now:%Y%m%d%H%M}", {"count": count, "minutes": minutes}, now)
            sends += got
            if recorded:
                touched.add(rule.project_id)
        ready = touch_timelines(rt, s, touched, now)
    _after_commit(rt, sends, ready)
    return fired


def _project_volume(s: Session, project_id: int, since: datetime) -> int:
    for resolution, start in (("minute", since.replace(second=0, microsecond=0)), ("hour", since.replace(minute=0, second=0, microsecond=0))):
        total = s.scalar(
            select(func.sum(Rollup.count)).where(
                Rollup.resolution == resolution, Rollup.project_id == project_id, Rollup.issue_id == 0, Rollup.bucket >= start
            )
        )
        if total is not None:
            return int(total)
    return 0
