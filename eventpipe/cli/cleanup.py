"""`eventpipe cleanup run` and the project settings of the issue lifecycle:
`projects fingerprint-rules`, `projects set` (retention, auto-resolve age), `projects delete`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from eventpipe.cli.issues import default_actor, emit_json, err, finish, friendly_errors, out, runtime


@click.group()
def cleanup() -> None:
    """Retention, orphan bodies, old dead letters and rollups."""


@cleanup.command("run")
@click.option("--dry-run", is_flag=True, help="only count what is due")
@click.option("--grace-hours", type=float, default=None, help="orphan bodies: how long without a row before deletion (default 168)")
@click.option("--dead-letter-days", type=float, default=None, help="dead letters older than this are dropped (default 14)")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def cleanup_run(dry_run: bool, grace_hours: float | None, dead_letter_days: float | None, as_json: bool) -> None:
    """Run every cleanup now: retention sweep (rows, then bodies), orphan bodies, dead letters,
    expired rollups. Orphans are deleted only after being seen twice, --grace-hours apart."""
    from eventpipe.tasks.cleanup import (
        DEAD_LETTER_DAYS,
        ORPHAN_GRACE_HOURS,
        dead_letters_expire,
        expire_dead_letters,
        expired_counts,
        kv_orphans,
        retention_sweep,
        scan_orphans,
    )
    from eventpipe.tasks.rollups import expire

    rt = runtime()
    grace = ORPHAN_GRACE_HOURS if grace_hours is None else grace_hours
    dl_days = DEAD_LETTER_DAYS if dead_letter_days is None else dead_letter_days
    report: dict[str, Any] = {
        "dry_run": dry_run,
        "expired_events": expired_counts(rt.db),
        "dead_letters_expired": expire_dead_letters(rt.db, max_age=timedelta(days=dl_days), dry_run=True),
    }
    if dry_run:
        report["orphans"] = scan_orphans(rt.db, rt.store, grace=timedelta(hours=grace), dry_run=True)
    else:
        retention_sweep.send(rt)
        dead_letters_expire.send(rt, max_age_days=dl_days)
        expire.send(rt)
        report["done"] = finish(rt)
        # orphans last, after the sweep's deletes, inline so its figures can be reported
        report["orphans"] = scan_orphans(rt.db, rt.store, grace=timedelta(hours=grace)) if report["done"] else "queued"
        if not report["done"]:
            kv_orphans.send(rt, grace_hours=grace)
    if as_json:
        emit_json(report)
        return
    verb = "due" if dry_run else ("deleted" if report["done"] else "queued")
    expired = sum(report["expired_events"].values())
    out.print(f"events past retention: {expired} {verb}" + "".join(f"\n  project {p}: {n}" for p, n in report["expired_events"].items() if n))
    out.print(f"dead letters older than {dl_days:g} days: {report['dead_letters_expired']} {verb}")
    o = report["orphans"]
    if isinstance(o, dict):
        out.print(f"bodies scanned: {o['scanned']}, without a row: {o['orphans']} "
                  f"({o['new_candidates']} first seen now, {o['deleted']} {'due' if dry_run else 'deleted'} after {grace:g} h)")


# projects: settings of the lifecycle --------------------------------------------------------------
@click.command("fingerprint-rules")
@click.argument("project_id", type=int)
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def fingerprint_rules(project_id: int, file: Path | None, as_json: bool) -> None:
    """Set a project's fingerprint rules from FILE ('-': stdin) as a new version; without FILE,
    show the versions. New events use the rules at once; `issues regroup` applies them to stored ones.

    \b
    One rule a line, e.g.:
      error.type:ConnectionError -> connection-errors
      type:KeyError function:checkout* -> checkout, {{ default }}
    """
    from eventpipe.metadata.grouping_rules import rule_versions, set_rules

    rt = runtime()
    if file is None:
        versions = rule_versions(rt.db, project_id)
        if as_json:
            emit_json(versions)
        elif not versions:
            click.echo(f"project {project_id} has no fingerprint rules; set them with `eventpipe projects fingerprint-rules {project_id} FILE`")
        else:
            for v in versions:
                click.echo(f"version {v['version']}: {v['rules']} rule(s), {v['created_at'][:19]} by {v['actor'] or '-'} ({v['digest']})")
            click.echo(versions[-1]["text"].rstrip())
        return
    text = click.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    result = set_rules(rt.db, project_id, text, actor=default_actor())
    if as_json:
        emit_json(result)
    else:
        click.echo(f"project {project_id}: fingerprint rules version {result['version']} ({result['rules']} rule(s)); "
                   f"run `eventpipe issues regroup --project {project_id}` to apply them to stored events")


@click.command("set")
@click.argument("project_id", type=int)
@click.option("--retention-days", type=click.IntRange(1), default=None, help="keep events this many days")
@click.option("--resolve-age", type=click.IntRange(0), default=None, help="auto-resolve issues not seen for N hours (0: never)")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def project_set(project_id: int, retention_days: int | None, resolve_age: int | None, as_json: bool) -> None:
    """Change a project's retention and auto-resolve age."""
    from eventpipe.metadata.issues import InvalidIssueAction
    from eventpipe.metadata.models import Project

    if retention_days is None and resolve_age is None:
        raise click.UsageError("give --retention-days and/or --resolve-age")
    rt = runtime()
    with rt.db.session() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise InvalidIssueAction(f"no project {project_id}; see `eventpipe projects list`")
        if retention_days is not None:
            project.retention_days = retention_days
        if resolve_age is not None:
            project.resolve_age = resolve_age or None
        row = {"id": project.id, "name": project.name, "retention_days": project.retention_days, "resolve_age": project.resolve_age}
    if as_json:
        emit_json(row)
    else:
        click.echo(f"project {row['id']}: retention {row['retention_days']} days, auto-resolve "
                   + (f"after {row['resolve_age']} h" if row["resolve_age"] else "off"))


@click.command("delete")
@click.argument("project_id", type=int)
@click.option("--yes", is_flag=True, help="do not ask")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def project_delete(project_id: int, yes: bool, as_json: bool) -> None:
    """Delete a project: its ingest key stops working at once; events, bodies and issues follow."""
    from eventpipe.tasks.cleanup import start_delete_project

    if not yes and not as_json:
        click.confirm(f"delete project {project_id} and all its events?", abort=True, err=True)
    rt = runtime()
    result = start_delete_project(rt, project_id, actor=default_actor())
    if finish(rt):
        result["status"] = "deleted"
    if as_json:
        emit_json(result)
    else:
        err.print(f"project {project_id}: {result['status']}")


def attach(projects: click.Group) -> None:
    """Add the lifecycle commands to `eventpipe projects`."""
    for command in (fingerprint_rules, project_set, project_delete):
        projects.add_command(command)
