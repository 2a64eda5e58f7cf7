"""``eventpipe events show``: one stored event, read from the KV store, with its attachments."""

from __future__ import annotations

import sys

import click

from eventpipe.ingest.stored import show_event
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.normalize import normalize_event_id

from ._common import ExitCode, emit_json, err, group, json_option, open_rt, out


@group("events")
def events() -> None:
    """Stored events."""


@events.command("show")
@click.argument("project_id", type=int)
@click.argument("event_id")
@json_option
def events_show(project_id: int, event_id: str, as_json: bool) -> None:
    """Print a stored event (its body in the KV store) and its attachments."""
    try:
        eid = normalize_event_id(event_id)
    except InvalidEvent as exc:
        raise click.BadParameter(f"{exc.detail}; copy the id from `eventpipe send --json` or the SDK") from None
    shown = show_event(open_rt().store, project_id, eid)
    if shown is None:
        if as_json:
            emit_json({"error": "not_found", "project_id": project_id, "event_id": eid})
        err.print(f"[red]no stored event {eid} in project {project_id}[/red]: check both ids (`eventpipe issues list`)")
        sys.exit(ExitCode.FAILED)
    if as_json:
        emit_json(shown)
        return
    event = shown["event"]
    out.print(f"event {eid} (project {project_id}, key {shown['key']})", highlight=False)
    for key in ("level", "platform", "message", "culprit", "transaction", "release", "environment"):
        if event.get(key):
            out.print(f"  {key}: {event[key]}", soft_wrap=True, highlight=False)
    for exc in event.get("exception") or []:
        out.print(f"  exception: {exc.get('type')}: {exc.get('value')}", soft_wrap=True, highlight=False)
    for e in event.get("errors") or []:
        out.print(f"  repaired {e.get('field')}: {e.get('error')}", soft_wrap=True, highlight=False)
    attachments = shown["attachments"]
    out.print(f"  attachments: {len(attachments)}", highlight=False)
    for a in attachments:
        out.print(f"    {a['filename']} ({a['content_type']}, {a['size']} bytes) at {a['key']}", highlight=False)


__all__ = ["events"]


def _run_here(rt: object) -> bool:
    """Embedded mode: run the queued work to completion before returning (as `send` does)."""
    if rt.settings.embedded:  # type: ignore[attr-defined]
        rt.broker.run_until_idle()  # type: ignore[attr-defined]
        return True
    return False


@events.command("reprocess")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--issue", "issue_id", type=int, default=None, help="only this issue's events")
@click.option("--chunk", type=click.IntRange(1, 5000), default=200, show_default=True)
@json_option
def events_reprocess(project_id: int, issue_id: int | None, chunk: int, as_json: bool) -> None:
    """Send stored events through processing again (after scrubbing or normalization changed)."""
    from eventpipe.tasks.reprocess import newest_id, reprocess

    rt = open_rt()
    until = newest_id(rt.context, project_id)
    reprocess.send(rt.context, project_id=project_id, issue_id=issue_id, until_id=until, chunk=chunk)
    result = {"project_id": project_id, "issue_id": issue_id, "until_id": until, "done": _run_here(rt)}
    if as_json:
        emit_json(result)
    else:
        out.print(f"reprocessing project {project_id} up to event row {until}: {'done' if result['done'] else 'queued'}")


@events.command("backfill-enrichment")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--chunk", type=click.IntRange(1, 5000), default=200, show_default=True)
@json_option
def events_backfill_enrichment(project_id: int, chunk: int, as_json: bool) -> None:
    """Record affected users and tag values of events stored before they were recorded."""
    from eventpipe.tasks.reprocess import backfill_enrichment, newest_id

    rt = open_rt()
    until = newest_id(rt.context, project_id)
    backfill_enrichment.send(rt.context, project_id=project_id, until_id=until, chunk=chunk)
    result = {"project_id": project_id, "until_id": until, "done": _run_here(rt)}
    if as_json:
        emit_json(result)
    else:
        out.print(f"backfilling users and tags of project {project_id}: {'done' if result['done'] else 'queued'}")
