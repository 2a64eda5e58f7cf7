"""``eventpipe monitors``: cron monitors; a missed or failed check-in opens an issue."""

from __future__ import annotations

import click

from eventpipe.notify.monitors import add_monitor, list_monitors, record_checkin

from ._common import emit_json, group, json_option, open_rt


@group()
def monitors() -> None:
    """Cron monitors: jobs that check in; a missed or failed check-in opens an issue."""


@monitors.command("add")
@click.argument("name")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--schedule", required=True, help="cron expression in UTC, e.g. '0 * * * *'")
@click.option("--margin-minutes", type=int, default=5, show_default=True, help="how late a check-in may be")
@json_option
def monitors_add(name: str, project_id: int, schedule: str, margin_minutes: int, as_json: bool) -> None:
    """Add a cron monitor; jobs check in with POST /api/PROJECT/cron/SLUG/."""
    m = add_monitor(open_rt().db, project_id, name, schedule, margin_minutes=margin_minutes)
    if as_json:
        emit_json(m)
    else:
        click.echo(f"monitor {m['slug']} (project {project_id}, {m['schedule']}): check in with POST /api/{project_id}/cron/{m['slug']}/")


@monitors.command("list")
@click.option("--project", "project_id", type=int, default=None)
@json_option
def monitors_list(project_id: int | None, as_json: bool) -> None:
    """List cron monitors."""
    rows = list_monitors(open_rt().db, project_id)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no monitors; add one with `eventpipe monitors add NAME --project ID --schedule '0 * * * *'`")
    for r in rows:
        click.echo(f"{r['project_id']}\t{r['slug']}\t{r['schedule']}\tmargin {r['margin_minutes']}m")


@monitors.command("checkin")
@click.argument("slug")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--status", default="ok", show_default=True, help="ok | error | in_progress")
@json_option
def monitors_checkin(slug: str, project_id: int, status: str, as_json: bool) -> None:
    """Record a check-in from a script on this machine (same effect as the HTTP route)."""
    result = record_checkin(open_rt().db, project_id, slug, status)
    emit_json(result) if as_json else click.echo(f"check-in {result['checkin_id']} of {slug}: {result['status']}")
