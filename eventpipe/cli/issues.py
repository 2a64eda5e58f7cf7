"""`eventpipe issues …`: the issue lifecycle from the command line.

Thin over eventpipe.metadata.issues (reads, status changes) and the ``start_*`` functions of
eventpipe.tasks.groups / regroup (which make the decisive change and enqueue the chunked work).
In the embedded mode a command that enqueued work runs the in-process workers until every queue
is empty before it returns, as `eventpipe send` does; on RabbitMQ it returns once the work is
queued (`issues regroup` waits with a progress bar unless --no-wait).
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from eventpipe.errors import EventpipeError
from eventpipe.pipeline.fingerprint_rules import RulesSyntaxError

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode())


def runtime() -> Any:
    from eventpipe.cli._common import open_rt

    return open_rt()


def default_actor() -> str:
    """Who is acting: EVENTPIPE_ACTOR, else the login name."""
    try:
        return os.environ.get("EVENTPIPE_ACTOR") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def friendly_errors(fn: F) -> F:
    """Lifecycle errors become one line on stderr (and a JSON object with --json) and the error's
    exit code, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (EventpipeError, RulesSyntaxError) as exc:
            if kwargs.get("as_json"):
                emit_json({"error": str(exc), "type": type(exc).__name__})
            err.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=True, highlight=False)
            sys.exit(getattr(exc, "exit_code", 2))

    return wrapper  # type: ignore[return-value]


def finish(rt: Any) -> bool:
    """Embedded mode: run the queued work to completion. Returns True when it ran here."""
    if rt.settings.embedded:
        rt.broker.run_until_idle()
        return True
    return False


def notify_changes(rt: Any, rows: list[dict[str, Any]]) -> None:
    """Tell the project's alert rules about status changes (``notify.send_activity``; the key
    makes a redelivery a no-op) and, in the embedded mode, deliver before returning."""
    from eventpipe.tasks.notify import send_activity

    changed = [r for r in rows if r["changed"]]
    for r in changed:
        send_activity.send(rt, project_id=r["project_id"], issue_id=r["id"], kind=r["status"],
                           key=f"{r['status']}:{r['id']}:{r['at']}", detail={"previous": r["previous"]})
    if changed:
        finish(rt)


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_until(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC unless it has an offset) or a duration from now (30m, 2h, 7d) -> naive UTC."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    m = _RELATIVE.match(text.strip())
    if m:
        return now + timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use an ISO 8601 time (2026-12-01T09:00Z) or a duration (30m, 2h, 7d)") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


# issues ---------------------------------------------------------------------------------------
@click.group()
def issues() -> None:
    """Grouped issues: list, show, resolve, ignore, merge, unmerge, delete, regroup."""


def print_issue_table(rows: list[dict[str, Any]], title: str) -> None:
    table = Table("id", "status", "title", "count", "first seen", "last seen", title=title)
    for r in rows:
        table.add_row(str(r["id"]), r["status"], r["title"][:60], str(r["count"]), (r["first_seen"] or "")[:19], (r["last_seen"] or "")[:19])
    out.print(table)


@issues.command("list")
@click.option("--project", "project_id", type=int, default=None)
@click.option("--status", type=click.Choice(["unresolved", "resolved", "ignored"]), default=None, help="default: all")
@click.option("--query", default=None, help="substring of the title or culprit")
@click.option("--sort", type=click.Choice(["count", "last_seen", "first_seen"]), default="count", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_list(project_id: int | None, status: str | None, query: str | None, sort: str, limit: int, as_json: bool) -> None:
    """List issues; counts include increments not yet flushed."""
    from eventpipe.metadata.issues import list_issues

    rows = list_issues(runtime().db, project_id=project_id, status=status, query=query, sort=sort, limit=limit)
    if as_json:
        emit_json(rows)
    else:
        print_issue_table(rows, f"issues ({len(rows)})")


@issues.command("show")
@click.argument("issue_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_show(issue_id: int, as_json: bool) -> None:
    """Show an issue (merged-away ids redirect) with its hashes, latest event and activity."""
    from eventpipe.metadata.issues import show_issue

    rt = runtime()
    shown = show_issue(rt.db, issue_id, rt.store)
    if as_json:
        emit_json(shown)
        return
    if "redirected_from" in shown:
        out.print(f"issue {issue_id} was merged into {shown['id']}")
    out.print(f"[bold]#{shown['id']}[/bold] {shown['title']}  ({shown['status']}, project {shown['project_id']})", highlight=False)
    out.print(f"culprit: {shown['culprit'] or '-'}   level: {shown['level']}   count: {shown['count']}   stored events: {shown['events_stored']}")
    out.print(f"first seen {shown['first_seen']}   last seen {shown['last_seen']}")
    if shown["snooze_until"] or shown["snooze_until_count"]:
        out.print(f"ignored until {shown['snooze_until'] or '-'} / count {shown['snooze_until_count'] or '-'}")
    out.print("hashes: " + (", ".join(shown["hashes"]) or "-"))
    if shown["merged_ids"]:
        out.print("merged ids: " + ", ".join(map(str, shown["merged_ids"])))
    latest = shown["latest_event"]
    if latest:
        out.print(f"latest event: {latest['event_id']} at {latest['timestamp']} (`eventpipe events show {shown['project_id']} {latest['event_id']}`)")
    for a in shown["activity"][:10]:
        out.print(f"  {a['created_at'][:19]}  {a['kind']:<14} {a['actor'] or ''}", highlight=False)


def _status_command(name: str, status: str, doc: str) -> None:
    @issues.command(name, help=doc)
    @click.argument("issue_ids", type=int, nargs=-1, required=True)
    @click.option("--actor", default=None, help="who does this (default: EVENTPIPE_ACTOR or your login)")
    @click.option("--json", "as_json", is_flag=True)
    @friendly_errors
    def command(issue_ids: tuple[int, ...], actor: str | None, as_json: bool, **snooze: Any) -> None:
        from eventpipe.metadata.issues import set_status

        until = parse_until(snooze["until"]) if snooze.get("until") else None
        rt = runtime()
        rows = set_status(rt.db, list(issue_ids), status, actor=actor or default_actor(), until=until, count=snooze.get("count"))
        notify_changes(rt, rows)
        if as_json:
            emit_json(rows)
            return
        for r in rows:
            moved = f" (merged id {r['redirected_from']})" if "redirected_from" in r else ""
            click.echo(f"issue {r['id']}{moved}: {r['previous']} -> {r['status']}" + ("" if r["changed"] else " (unchanged)"))

    if status == "ignored":
        command = click.option("--until", default=None, help="snooze until a UTC time (ISO 8601) or for a duration (30m, 2h, 7d)")(command)
        command = click.option("--count", type=click.IntRange(1), default=None, help="snooze until N more events")(command)


_status_command("resolve", "resolved", "Resolve issues; a new event reopens one as a regression.")
_status_command("unresolve", "unresolved", "Mark issues unresolved again.")
_status_command("ignore", "ignored", "Ignore issues, for good or until a time (--until) or N more events (--count).")


@issues.command("merge")
@click.option("--into", "target", type=int, required=True, help="the issue that stays")
@click.argument("issue_ids", type=int, nargs=-1, required=True)
@click.option("--actor", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_merge(target: int, issue_ids: tuple[int, ...], actor: str | None, as_json: bool) -> None:
    """Merge issues into one: events, hashes, counts and rollups move; old ids redirect."""
    from eventpipe.tasks.groups import start_merge

    rt = runtime()
    result = start_merge(rt, target, list(issue_ids), actor=actor or default_actor())
    result["done"] = finish(rt)
    if as_json:
        emit_json(result)
    else:
        state = "merged" if result["done"] else "merge queued"
        click.echo(f"{state}: {', '.join(map(str, result['merged']))} -> {result['target']}")


@issues.command("unmerge")
@click.argument("issue_id", type=int)
@click.option("--hash", "hashes", multiple=True, required=True, help="a hash to split off (see `issues show`); repeatable")
@click.option("--actor", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_unmerge(issue_id: int, hashes: tuple[str, ...], actor: str | None, as_json: bool) -> None:
    """Move the events of some hashes to a new issue; counts are recomputed on both."""
    from eventpipe.tasks.groups import start_unmerge

    rt = runtime()
    result = start_unmerge(rt, issue_id, list(hashes), actor=actor or default_actor())
    result["done"] = finish(rt)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{len(result['hashes'])} hash(es) of issue {result['issue']} -> new issue {result['new_issue']}"
                   + ("" if result["done"] else " (events moving in the background)"))


@issues.command("delete")
@click.argument("issue_ids", type=int, nargs=-1, required=True)
@click.option("--actor", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_delete(issue_ids: tuple[int, ...], actor: str | None, as_json: bool) -> None:
    """Delete issues: their event rows, then their bodies in the KV store."""
    from eventpipe.tasks.groups import start_delete

    rt = runtime()
    rows = start_delete(rt, list(issue_ids), actor=actor or default_actor())
    done = finish(rt)
    for r in rows:
        r["status"] = "deleted" if done else "pending_deletion"
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            click.echo(f"issue {r['id']}: {r['status']}")


@issues.command("regroup")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--resume", is_flag=True, help="continue the project's unfinished run")
@click.option("--chunk", type=click.IntRange(1, 10_000), default=500, show_default=True, help="events per task message")
@click.option("--wait/--no-wait", default=True, help="on RabbitMQ: wait for the workers to finish (default)")
@click.option("--actor", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def issues_regroup(project_id: int, resume: bool, chunk: int, wait: bool, actor: str | None, as_json: bool) -> None:
    """Re-fingerprint every stored event of a project under its current rules and move events
    between issues (resumable; counts stay exact)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from eventpipe.tasks.regroup import regroup_status, resume_regroup, start_regroup

    rt = runtime()
    run = resume_regroup(rt, project_id, chunk=chunk) if resume else start_regroup(rt, project_id, actor=actor or default_actor(), chunk=chunk)
    run_id = run["run_id"]
    with Progress(TextColumn("regrouping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=as_json) as bar:
        job = bar.add_task("events", total=max(run["total"], 1))

        def tick() -> None:
            bar.update(job, completed=regroup_status(rt, run_id)["events_read"])

        if rt.settings.embedded:
            last = [0.0]

            def throttled() -> None:
                if time.monotonic() - last[0] > 0.25:
                    last[0] = time.monotonic()
                    tick()

            rt.broker.run_until_idle(progress=throttled)
        elif wait:
            while regroup_status(rt, run_id)["status"] == "running":
                tick()
                time.sleep(0.5)
        tick()
    summary = regroup_status(rt, run_id)
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"regroup run {run_id} {summary['status']}: {summary['events_read']} events read, {summary['events_moved']} moved, "
            f"{summary['issues_created']} issues created, {summary['merged_away']} merged away"
            + (f", {summary['bodies_missing']} bodies missing" if summary["bodies_missing"] else "")
        )
