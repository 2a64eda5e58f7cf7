"""Weekly project reports: ``reports.prepare_weekly`` (periodic) fans out one
``reports.prepare_project`` per project with email recipients, which records one report email per
recipient (unique key per project, period and recipient: a repeat records nothing new) and hands
it to ``reports.deliver``, the same claim -> SMTP -> mark path as digest email."""

from __future__ import annotations

from datetime import datetime, timedelta
from sqlalchemy import func, select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import AlertRule, Issue, NotificationSend, Project, Rollup
from eventpipe.metadata.repo import insert_ignore
from eventpipe.pipeline.reports import IssueLine, WeeklyReport, fill_days, top
from eventpipe.tasks.api import TaskContext, task
from eventpipe.tasks.notify_send import deliver_email

Runtime = TaskContext

DAYS = 7


def _period_end(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@task("reports.prepare_weekly", queue="reports", cron="0 9 * * 1", schedule={"expires_s": 12 * 3600, "catch_up": "once"})
def prepare_weekly(rt: Runtime, *, end: str | None = None) -> int:
    """Start this week's report of every project that has email recipients (the 7 days before ``end``)."""
    period_end = datetime.fromisoformat(end) if end else _period_end(utcnow())
    with rt.db.session() as s:
        projects = sorted({p for p, emails in s.execute(select(AlertRule.project_id, AlertRule.emails)) if emails})
    if projects:
        rt.enqueue_many(prepare_project, [{"project_id": p, "end": period_end.isoformat()} for p in projects])
    return len(projects)


def build_report(rt: Runtime, project_id: int, end: datetime) -> WeeklyReport:
    start = end - timedelta(days=DAYS)
    with rt.db.session() as s:
        project = s.get(Project, project_id)
        name = project.name if project else str(project_id)
        volume = dict(s.execute(
            select(Rollup.bucket, Rollup.count).where(Rollup.resolution == "day", Rollup.project_id == project_id,
                                                      Rollup.issue_id == 0, Rollup.bucket >= start, Rollup.bucket < end)
        ).all())
        per_issue = dict(s.execute(
            select(Rollup.issue_id, func.sum(Rollup.count)).where(Rollup.resolution == "day", Rollup.project_id == project_id,
                                                                  Rollup.issue_id != 0, Rollup.bucket >= start, Rollup.bucket < end)
            .group_by(Rollup.issue_id)
        ).all())
        titles = dict(s.execute(select(Issue.id, Issue.title).where(Issue.project_id == project_id, Issue.id.in_(per_issue))).all())
        new = s.execute(select(Issue.id, Issue.title).where(Issue.project_id == project_id, Issue.first_seen >= start, Issue.first_seen < end)).all()
        resolved = s.execute(select(Issue.id, Issue.title).where(Issue.project_id == project_id, Issue.status == "resolved",
                                                                 Issue.resolved_at >= start, Issue.resolved_at < end)).all()
    line = lambda i, t: IssueLine(i, t, int(per_issue.get(i, 0)))  # noqa: E731
    return WeeklyReport(
        project_id, name, start, end,
        new_issues=top([line(r.id, r.title) for r in new], 20),
        resolved_issues=top([line(r.id, r.title) for r in resolved], 20),
        top_issues=top([IssueLine(i, titles.get(i, f"issue {i}"), int(c)) for i, c in per_issue.items()], 5),
        volume_by_day=fill_days(start, DAYS, {k: int(v) for k, v in volume.items()}),
    )


@task("reports.prepare_project", queue="reports")
def prepare_project(rt: Runtime, *, project_id: int, end: str) -> int:
    """Build one project's weekly report and record one email per recipient of its rules."""
    period_end = datetime.fromisoformat(end)
    report = build_report(rt, project_id, period_end)
    now = utcnow()
    with rt.db.session() as s:
        recipients = sorted({e for (emails,) in s.execute(select(AlertRule.emails).where(AlertRule.project_id == project_id)) for e in emails or []})
        keys = [f"report:{project_id}:{period_end:%Y%m%d}:{r}"[:255] for r in recipients]
        for r, key in zip(recipients, keys, strict=True):
            insert_ignore(s, NotificationSend, [{"key": key, "channel": "email", "project_id": project_id, "target": r,
                                                 "payload": report.as_payload(r), "status": "pending", "attempts": 0,
                                                 "last_error": "", "created_at": now}], ["key"])
        ids = list(s.scalars(select(NotificationSend.id).where(NotificationSend.key.in_(keys), NotificationSend.status == "pending")))
    if ids:
        rt.enqueue_many(deliver, [{"send_id": i} for i in ids])
    return len(ids)


@task("reports.deliver", queue="notify.send", max_retries=100)
def deliver(rt: Runtime, *, send_id: int) -> str:
    """Email one recorded report (claim -> SMTP -> mark, like digests)."""
    return deliver_email(rt, send_id)
