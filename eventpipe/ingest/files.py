"""Reading events from files for `eventpipe send`: a JSON event, a JSON list of events, or a
Sentry envelope. Errors name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from eventpipe.pipeline.envelope import looks_like_envelope, parse_envelope, project_from_dsn
from eventpipe.pipeline.errors import InvalidEvent


def read_event_file(path: Path, project_id: int | None) -> tuple[int, list[Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidEvent("unreadable_file", str(path), f"cannot read: {exc.strerror}") from None
    if looks_like_envelope(raw):
        try:
            env = parse_envelope(raw)
        except InvalidEvent as exc:
            raise InvalidEvent(exc.reason, f"{path}:{exc.field}", exc.detail) from None
        pid = project_id if project_id is not None else project_from_dsn(env.header.get("dsn"))
        if pid is None:
            raise InvalidEvent("no_project", f"{path}:envelope.header.dsn", "no DSN with a project id; pass --project ID")
        return pid, env.events
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", str(path), f"not JSON and not a Sentry envelope ({exc})") from None
    if project_id is None:
        raise InvalidEvent("no_project", str(path), "a JSON event file needs --project ID")
    return project_id, data if isinstance(data, list) else [data]
