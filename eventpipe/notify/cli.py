"""``eventpipe rules`` (alert rules and the sends they caused) and ``eventpipe monitors`` (cron
monitors and check-ins). Thin: each command calls eventpipe.notify.rules / .monitors."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from eventpipe.pipeline.conditions import RuleError
from eventpipe.pipeline.monitors import MonitorError


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _db() -> Any:
    from eventpipe.config import ConfigError
    from eventpipe.runtime import open_runtime

    try:
        return open_runtime().db
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


# rules ------------------------------------------------------------------------------------------
@click.group("rules")
def rules() -> None:
    """Alert rules: which events notify whom (email digests, signed webhooks)."""


@rules.command("add")
@click.option("--project", "project_id", type=int, required=True, help="project id")
@click.option("--when", "when", required=True, help="first_seen | regression | every_event | frequency:N/MINUTES | spike:N/MINUTES")
@click.option("--level", default=None, help="only events at or above this level (debug, info, warning, error, fatal)")
@click.option("--email", "emails", multiple=True, help="recipient of digest email (repeatable)")
@click.option("--webhook", "webhooks", multiple=True, help="URL that receives a signed JSON POST (repeatable)")
@click.option("--throttle-minutes", type=int, default=30, show_default=True, help="fire at most once per issue per M minutes (0: every time)")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def rules_add(project_id: int, when: str, level: str | None, emails: tuple[str, ...], webhooks: tuple[str, ...], throttle_minutes: int, as_json: bool) -> None:
    """Add an alert rule to a project."""
    from eventpipe.notify.rules import add_rule

    try:
        rule = add_rule(_db(), project_id, when, level=level, emails=emails, webhooks=webhooks, throttle_minutes=throttle_minutes)
    except RuleError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        _emit(rule.as_dict())
    else:
        click.echo(f"rule {rule.id}: project {project_id} when {rule.condition} -> {', '.join(rule.emails + rule.webhooks)}")


@rules.command("list")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def rules_list(project_id: int | None, as_json: bool) -> None:
    """List alert rules."""
    from eventpipe.notify.rules import list_rules

    rows = [r.as_dict() for r in list_rules(_db(), project_id)]
    if as_json:
        _emit(rows)
        return
    if not rows:
        click.echo("no rules; add one with `eventpipe rules add --project ID --when first_seen --email you@example.com`")
    for r in rows:
        targets = ", ".join(r["emails"] + r["webhooks"])
        click.echo(f"{r['id']}\tproject {r['project_id']}\t{r['when']}\tlevel>={r['level'] or 'any'}\tthrottle {r['throttle_minutes']}m\t{targets}")


@rules.command("remove")
@click.argument("rule_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def rules_remove(rule_id: int, as_json: bool) -> None:
    """Remove an alert rule."""
    from eventpipe.notify.rules import remove_rule

    if not remove_rule(_db(), rule_id):
        raise click.ClickException(f"no rule {rule_id}; see `eventpipe rules list`")
    _emit({"removed": rule_id}) if as_json else click.echo(f"removed rule {rule_id}")


@rules.command("sends")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--status", default=None, help="pending | sending | sent | unknown | dead")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def rules_sends(project_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """Recorded emails and webhook deliveries, newest first. ``sending``/``unknown`` rows are the
    at-most-once step: the remote may have them; they are never retried."""
    from eventpipe.metadata.models import NotificationSend

    q = select(NotificationSend).order_by(NotificationSend.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(NotificationSend.project_id == project_id)
    if status:
        q = q.where(NotificationSend.status == status)
    with _db().session() as s:
        rows = [{"id": r.id, "key": r.key, "channel": r.channel, "target": r.target, "status": r.status, "attempts": r.attempts,
                 "last_error": r.last_error, "created_at": r.created_at, "sent_at": r.sent_at} for r in s.scalars(q)]
    if as_json:
        _emit(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['channel']}\t{r['status']}\t{r['target']}\t{r['last_error'][:80]}")


# monitors ---------------------------------------------------------------------------------------
@click.group("monitors")
def monitors() -> None:
    """Cron monitors: jobs that check in; a missed or failed check-in opens an issue."""


@monitors.command("add")
@click.argument("name")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--schedule", required=True, help="cron expression in UTC, e.g. '0 * * * *'")
@click.option("--margin-minutes", type=int, default=5, show_default=True, help="how late a check-in may be")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def monitors_add(name: str, project_id: int, schedule: str, margin_minutes: int, as_json: bool) -> None:
    """Add a cron monitor; jobs check in with POST /api/PROJECT/cron/SLUG/."""
    from eventpipe.notify.monitors import add_monitor

    try:
        m = add_monitor(_db(), project_id, name, schedule, margin_minutes=margin_minutes)
    except MonitorError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        _emit(m)
    else:
        click.echo(f"monitor {m['slug']} (project {project_id}, {m['schedule']}): check in with POST /api/{project_id}/cron/{m['slug']}/")


@monitors.command("list")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def monitors_list(project_id: int | None, as_json: bool) -> None:
    """List cron monitors."""
    from eventpipe.notify.monitors import list_monitors

    rows = list_monitors(_db(), project_id)
    if as_json:
        _emit(rows)
        return
    if not rows:
        click.echo("no monitors; add one with `eventpipe monitors add NAME --project ID --schedule '0 * * * *'`")
    for r in rows:
        click.echo(f"{r['project_id']}\t{r['slug']}\t{r['schedule']}\tmargin {r['margin_minutes']}m")


@monitors.command("checkin")
@click.argument("slug")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--status", default="ok", show_default=True, help="ok | error | in_progress")
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def monitors_checkin(slug: str, project_id: int, status: str, as_json: bool) -> None:
    """Record a check-in from a script on this machine (same effect as the HTTP route)."""
    from eventpipe.notify.monitors import record_checkin

    try:
        result = record_checkin(_db(), project_id, slug, status)
    except MonitorError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(result) if as_json else click.echo(f"check-in {result['checkin_id']} of {slug}: {result['status']}")
