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
