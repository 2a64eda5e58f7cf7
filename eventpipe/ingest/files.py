"""Reading events from files for `eventpipe send`: a JSON event, a JSON list of events, or a
Sentry envelope. The kind is decided by parsing (a file that is one JSON value is JSON, however
it is laid out), not by the shape of its lines. Errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventpipe.pipeline.envelope import Envelope, parse_envelope, project_from_dsn
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.jsonload import loads_tolerant


def read_event_file(path: Path, project_id: int | None) -> tuple[int, list[Any]]:
    pid, events, _ = read_event_file_full(path, project_id)
    return pid, events


def read_event_file_full(path: Path, project_id: int | None) -> tuple[int, list[Any], Envelope | None]:
    """(project id, events, the envelope when the file was one)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidEvent("unreadable_file", str(path), f"cannot read: {exc.strerror}") from None
    try:
        data = loads_tolerant(raw)
    except ValueError as json_error:
        try:
            env = parse_envelope(raw)
        except InvalidEvent as exc:
            if b"\n" not in raw.strip():
                raise InvalidEvent("invalid_json", str(path), f"not JSON and not a Sentry envelope ({json_error})") from None
            raise InvalidEvent(exc.reason, f"{path}:{exc.field}", exc.detail) from None
        pid = project_id if project_id is not None else project_from_dsn(env.header.get("dsn"))
        if pid is None:
            raise InvalidEvent("no_project", f"{path}:envelope.header.dsn", "no DSN with a project id; pass --project ID")
        return pid, env.events, env
    if project_id is None:
        raise InvalidEvent("no_project", str(path), "a JSON event file needs --project ID")
    return project_id, data if isinstance(data, list) else [data], None
