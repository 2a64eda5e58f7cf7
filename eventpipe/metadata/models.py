"""SQL metadata: projects, issues, the event index, buffered counters, rollups, activity, dead letters.

Every write the pipeline makes is idempotent by a unique key: ``(project_id, event_id)`` for events,
``(project_id, fingerprint_hash)`` for issues, ``(issue_id, kind, event_id)`` for activity and the
bucket key for rollups. Times are naive UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    ingest_key: Mapped[str] = mapped_column(String(64), unique=True)
    retention_days: Mapped[int] = mapped_column(Integer, default=90)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # groups: auto-resolve issues not seen for this many hours (None or 0: never)
    resolve_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Browser origins allowed to send events (CORS), whitespace-separated: "*", an origin, a host
    # or "*.example.com" (see eventpipe.ingest.cors). Migration 0006_sdk.
    allowed_origins: Mapped[str] = mapped_column(Text, default="*", server_default="*")


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("project_id", "fingerprint_hash", name="uq_issue_fingerprint"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    fingerprint_hash: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(512))
    culprit: Mapped[str] = mapped_column(String(512), default="")
    level: Mapped[str] = mapped_column(String(16), default="error")
    status: Mapped[str] = mapped_column(String(16), default="unresolved")
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    times_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # groups: an "ignored" issue's snooze lapses at this time, or once times_seen reaches this count
    snooze_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    snooze_until_seen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Event(Base):
    """The event index: one row per stored event, pointing at its body in the KV store."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("project_id", "event_id", name="uq_event_project_event"),
        Index("ix_events_issue_ts", "issue_id", "timestamp"),
        Index("ix_events_project_ts", "project_id", "timestamp"),
        Index("ix_events_ts", "timestamp"),
        Index("ix_events_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    event_id: Mapped[str] = mapped_column(String(32))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"))
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    kv_key: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    platform: Mapped[str] = mapped_column(String(32), default="other")
    level: Mapped[str] = mapped_column(String(16), default="error")
    fingerprint: Mapped[str] = mapped_column(String(64), default="")  # the hash it was grouped by


class GroupHash(Base):
    """Every fingerprint hash an issue owns (the reference system's GroupHash). The save path maps
    hashes to issues through this table, so after a merge new events of a merged-away hash land in
    the surviving issue, and an unmerge moves a hash (and its events) to a new issue."""

    __tablename__ = "group_hashes"
    __table_args__ = (UniqueConstraint("project_id", "hash", name="uq_group_hash"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), index=True)


class AcceptedEvent(Base):
    """Ingest dedupe: written after the event's message was confirmed by the broker, so a caller
    whose publish failed can resend the same event_id without it being taken for a duplicate."""

    __tablename__ = "accepted_events"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime)


class BufferedCounter(Base):
    """Append-only increments written in the same transaction as the event row (so each event
    counts once, however often it is delivered) and folded into issues by ``buffers.flush``.
    Appending instead of updating keeps hot issues from serializing on one row."""

    __tablename__ = "buffered_counters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    issue_id: Mapped[int] = mapped_column(BigInteger, index=True)
    delta: Mapped[int] = mapped_column(Integer, default=1)
    seen_at: Mapped[datetime] = mapped_column(DateTime)


class Rollup(Base):
    """Event counts per time bucket; ``issue_id`` 0 is the project-wide total."""

    __tablename__ = "rollups"

    resolution: Mapped[str] = mapped_column(String(8), primary_key=True)  # "hour" | "day"
    bucket: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class Activity(Base):
    """What post-processing found worth notifying: first_seen, regression."""

    __tablename__ = "activities"
    __table_args__ = (UniqueConstraint("issue_id", "kind", "event_id", name="uq_activity"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    issue_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # groups: who did it ("system" for periodic tasks) and details (e.g. merged issue ids)
    actor: Mapped[str] = mapped_column(String(200), default="", server_default="")
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class DeadLetter(Base):
    """Dead letters of the embedded broker (RabbitMQ keeps its own in per-queue DLQs)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(200), index=True)
    task: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(64))
    message: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer)
    failed_at: Mapped[datetime] = mapped_column(DateTime)


class TaskReceipt(Base):
    """Keys of idempotent task runs that completed (see eventpipe.tasks.receipts)."""

    __tablename__ = "task_receipts"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class WorkerHeartbeat(Base):
    """Each worker process upserts its row every few seconds; ops shows the ones seen recently."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    pool: Mapped[str] = mapped_column(String(100), default="")
    queues: Mapped[list] = mapped_column(JSON)
    nodes: Mapped[list] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime, index=True)
    tasks_done: Mapped[int] = mapped_column(BigInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default="running")


class QueuePause(Base):
    """A paused logical queue: every worker stops consuming it within seconds, until resumed."""

    __tablename__ = "queue_pauses"

    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


# --- scheduler: one row per job (watermark, pause) and one row per slot ---------------------------
# ``schedule_slots`` is both the SQL claim table and the history: with SQL claims a row is inserted
# (unique ``(job, kind, slot)``) when a scheduler claims the slot and completed with ``fired_at`` once
# the message is published; with Redis claims the row is written at fire time. A row whose
# ``fired_at`` is NULL is a claimed slot still owed a publish.

KIND_SCHEDULED = "scheduled"
KIND_MANUAL = "manual"


class ScheduleJob(Base):
    """Per job: ``last_slot`` is the watermark (every slot up to it has been decided: fired, claimed
    or skipped by the catch-up policy), so a restart neither repeats nor skips slots; ``paused`` is
    read by every scheduler on every tick that has something due."""

    __tablename__ = "schedule_jobs"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_slot: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    paused_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ScheduleSlot(Base):
    """One slot of one job: claim (SQL mode) and history (both modes)."""

    __tablename__ = "schedule_slots"
    __table_args__ = (
        Index("ix_schedule_slots_fired_at", "fired_at"),
        Index("ix_schedule_slots_job_fired_at", "job", "fired_at"),
    )

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "scheduled" | "manual"
    slot: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    fired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    fired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


# --- operator flags: drained nodes, closed queues, kill-switch rules ----------------------------
# Every publisher, worker and ``eventpipe ops`` invocation shares the metadata database, so a flag
# written here reaches every process (each caches it ~2 s) with no extra service.

class DrainedNode(Base):
    """A RabbitMQ node (``HOST:PORT``) publishers must not use (``eventpipe ops drain --node``)."""

    __tablename__ = "ops_drained_nodes"

    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    drained_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class ClosedQueue(Base):
    """A logical queue that refuses new work (``eventpipe ops drain --queue``); retries of
    messages already in the system are still accepted so nothing in flight is lost."""

    __tablename__ = "ops_closed_queues"

    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")


class KillSwitchRule(Base):
    """Workers drop messages whose task matches ``task`` (fnmatch pattern) and whose kwargs equal
    every ``where`` item. ``dropped`` is incremented by workers (batched, best effort)."""

    __tablename__ = "ops_killswitches"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(200))
    where: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)


__all__ = ["ClosedQueue", "DrainedNode", "KillSwitchRule"]


# groups and cleanup (issue lifecycle, fingerprint rules, regroup, retention) -----------------------


class FingerprintRuleVersion(Base):
    """Every version of a project's fingerprint rules; the highest version is in force. An empty
    ``text`` is a version too (rules cleared), so history is never rewritten."""

    __tablename__ = "fingerprint_rule_versions"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    rules: Mapped[list] = mapped_column(JSON)  # parsed form (RuleSet.to_json)
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class IssueRedirect(Base):
    """An issue id that no longer exists (merged, or emptied by a regroup) and where it went, so
    old links and ``issues show OLD`` still reach the surviving issue."""

    __tablename__ = "issue_redirects"

    issue_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(Integer)
    target_id: Mapped[int] = mapped_column(BigInteger, index=True)
    reason: Mapped[str] = mapped_column(String(16))  # "merge" | "regroup"
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ScheduledDeletion(Base):
    """A requested deletion (issue or project), recorded before its task is enqueued so a lost
    message is re-sent by ``cleanup.run_scheduled_deletions``."""

    __tablename__ = "scheduled_deletions"
    __table_args__ = (UniqueConstraint("kind", "object_id", name="uq_scheduled_deletion"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "issue" | "project"
    object_id: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_enqueued_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class RegroupRun(Base):
    """One ``issues regroup`` of a project: its cursor (the last event row id done) and counts,
    advanced in the same transaction as each chunk's moves, so a crashed run resumes exactly."""

    __tablename__ = "regroup_runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    rules_version: Mapped[int] = mapped_column(Integer)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    events_read: Mapped[int] = mapped_column(BigInteger, default=0)
    events_moved: Mapped[int] = mapped_column(BigInteger, default=0)
    bodies_missing: Mapped[int] = mapped_column(BigInteger, default=0)
    issues_created: Mapped[int] = mapped_column(Integer, default=0)
    merged_away: Mapped[int] = mapped_column(Integer, default=0)
    passes: Mapped[int] = mapped_column(Integer, default=1)
    conflicts: Mapped[int] = mapped_column(BigInteger, default=0)  # events moved by others during this pass
    touched: Mapped[dict] = mapped_column(JSON)  # {old issue: {new issue: events moved}}, checked at the end
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)  # last chunk done (stalled runs are re-sent)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class KVOrphanCandidate(Base):
    """A body seen with no event row; deleted by ``cleanup.kv_orphans`` once it has stayed an
    orphan for the grace period (the store gives no portable modification time)."""

    __tablename__ = "kv_orphan_candidates"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime)
# --- notifications, reports and cron monitors ----------------------------------------------------
# Alert rules decide which events notify whom; email goes out as per-project digests and every
# irrevocable send (an email, a webhook POST) is a row claimed before it is attempted, so a
# redelivered task never repeats a send the remote accepted.

class AlertRule(Base):
    """``when``: first_seen | regression | every_event | frequency | spike (with count/minutes)."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    when: Mapped[str] = mapped_column(String(32))
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    emails: Mapped[list] = mapped_column(JSON)
    webhooks: Mapped[list] = mapped_column(JSON)
    throttle_minutes: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class RuleFireState(Base):
    """When a rule last fired for an issue (0: the project); the throttle is a compare-and-set on it."""

    __tablename__ = "alert_rule_fires"

    rule_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    issue_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_fired_at: Mapped[datetime] = mapped_column(DateTime)
    fired: Mapped[int] = mapped_column(Integer, default=1)


class DigestRecord(Base):
    """One notification waiting for its project's digest; ``digest_id`` is set when a digest takes it."""

    __tablename__ = "digest_records"
    __table_args__ = (
        UniqueConstraint("rule_id", "issue_id", "kind", "ref", name="uq_digest_record"),
        Index("ix_digest_records_pending", "project_id", "digest_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[int] = mapped_column(BigInteger)
    issue_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64))  # event id or activity key
    detail: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    digest_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DigestTimeline(Base):
    """A project's digest schedule (the reference system's timeline): ``ready`` is due now,
    ``waiting`` is due at ``due_at``; no row means idle (the next record is delivered at once)."""

    __tablename__ = "digest_timelines"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_processed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Digest(Base):
    """One delivered digest window of a project: the records it took and when."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    records: Mapped[int] = mapped_column(Integer)
    issues: Mapped[int] = mapped_column(Integer)


class NotificationSend(Base):
    """An irrevocable send, recorded before it is attempted. ``status``: pending -> sending ->
    sent; a failure the remote reported goes back to pending (retried) or to dead with the
    reason; a crash between the remote accepting and ``sent`` leaves ``sending``: never retried
    (the documented at-most-once step)."""

    __tablename__ = "notification_sends"
    __table_args__ = (Index("ix_notification_sends_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    target: Mapped[str] = mapped_column(String(1000))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CronMonitor(Base):
    """A cron job that checks in; ``monitors.check`` opens an issue when a check-in is missed or failed."""

    __tablename__ = "cron_monitors"
    __table_args__ = (UniqueConstraint("project_id", "slug", name="uq_cron_monitor_slug"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    schedule: Mapped[str] = mapped_column(String(100))
    margin_minutes: Mapped[int] = mapped_column(Integer, default=5)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    checked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # slots before this are judged


class CheckIn(Base):
    """One check-in of a monitor: ``status`` ok | error | in_progress."""

    __tablename__ = "cron_checkins"
    __table_args__ = (
        UniqueConstraint("monitor_id", "checkin_id", name="uq_cron_checkin"),
        Index("ix_cron_checkins_monitor_ts", "monitor_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(BigInteger)
    checkin_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime)


# Web console (eventpipe.web): its users and the audit trail of every action taken there ---------
class WebUser(Base):
    """A console login. ``password_hash`` is ``scrypt$n$r$p$salt$hash`` (base64), never the password."""

    __tablename__ = "web_users"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="viewer")  # "admin" | "viewer"
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """One row per console action (and per refused or failed one), with the user who took it."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    user: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | refused | failed
    detail: Mapped[dict] = mapped_column(JSON)
