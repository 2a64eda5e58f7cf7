"""``eventpipe rules``: alert rules (which events notify whom) and the sends they caused."""

from __future__ import annotations

import click
from sqlalchemy import select

from eventpipe.metadata.models import NotificationSend
from eventpipe.notify.rules import add_rule, list_rules, remove_rule

from ._common import CommandFailed, emit_json, group, iso, json_option, open_rt


@group()
def rules() -> None:
    """Alert rules: which events notify whom (email digests, signed webhooks)."""


@rules.command("add")
@click.option("--project", "project_id", type=int, required=True, help="project id")
@click.option("--when", "when", required=True, help="first_seen | regression | every_event | frequency:N/MINUTES | spike:N/MINUTES")
@click.option("--level", default=None, help="only events at or above this level (debug, info, warning, error, fatal)")
@click.option("--email", "emails", multiple=True, help="recipient of digest email (repeatable)")
@click.option("--webhook", "webhooks", multiple=True, help="URL that receives a signed JSON POST (repeatable)")
@click.option("--throttle-minutes", type=int, default=30, show_default=True, help="fire at most once per issue per M minutes (0: every time)")
@json_option
def rules_add(project_id: int, when: str, level: str | None, emails: tuple[str, ...], webhooks: tuple[str, ...],
              throttle_minutes: int, as_json: bool) -> None:
    """Add an alert rule to a project."""
    rule = add_rule(open_rt().db, project_id, when, level=level, emails=emails, webhooks=webhooks, throttle_minutes=throttle_minutes)
    if as_json:
        emit_json(rule.as_dict())
    else:
        click.echo(f"rule {rule.id}: project {project_id} when {rule.condition} -> {', '.join(rule.emails + rule.webhooks)}")


@rules.command("list")
@click.option("--project", "project_id", type=int, default=None)
@json_option
def rules_list(project_id: int | None, as_json: bool) -> None:
    """List alert rules."""
    rows = [r.as_dict() for r in list_rules(open_rt().db, project_id)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no rules; add one with `eventpipe rules add --project ID --when first_seen --email you@example.com`")
    for r in rows:
        targets = ", ".join(r["emails"] + r["webhooks"])
        click.echo(f"{r['id']}\tproject {r['project_id']}\t{r['when']}\tlevel>={r['level'] or 'any'}\tthrottle {r['throttle_minutes']}m\t{targets}")


@rules.command("remove")
@click.argument("rule_id", type=int)
@json_option
def rules_remove(rule_id: int, as_json: bool) -> None:
    """Remove an alert rule."""
    if not remove_rule(open_rt().db, rule_id):
        raise CommandFailed(f"no rule {rule_id}; see `eventpipe rules list`")
    emit_json({"removed": rule_id}) if as_json else click.echo(f"removed rule {rule_id}")


@rules.command("sends")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "unknown", "dead"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def rules_sends(project_id: int | None, status: str | None, limit: int, as_json: bool) -> None:
    """Recorded emails and webhook deliveries, newest first. ``sending`` and ``unknown`` rows are
    the at-most-once step: the remote may have them; they are never retried."""
    q = select(NotificationSend).order_by(NotificationSend.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(NotificationSend.project_id == project_id)
    if status:
        q = q.where(NotificationSend.status == status)
    with open_rt().db.session() as s:
        rows = [{"id": r.id, "key": r.key, "channel": r.channel, "target": r.target, "status": r.status, "attempts": r.attempts,
                 "last_error": r.last_error, "created_at": iso(r.created_at), "sent_at": iso(r.sent_at)} for r in s.scalars(q)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['channel']}\t{r['status']}\t{r['target']}\t{r['last_error'][:80]}")
