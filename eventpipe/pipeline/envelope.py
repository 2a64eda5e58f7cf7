"""Sentry envelopes (``application/x-sentry-envelope``): a header line, then items, each an item
header line followed by its payload (``length`` bytes, or up to the next newline)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidEvent


@dataclass(frozen=True)
class Envelope:
    header: dict[str, Any]
    events: list[Any]  # decoded payloads of items of type "event"
    skipped: int  # items of other types (sessions, attachments…), not handled by this pipeline


def looks_like_envelope(raw: bytes) -> bool:
    first, _, rest = raw.partition(b"\n")
    return bool(rest.strip()) and first.lstrip().startswith(b"{") and b'"type"' in rest.split(b"\n", 1)[0]


def parse_envelope(raw: bytes) -> Envelope:
    try:
        head_line, _, pos_rest = raw.partition(b"\n")
        header = json.loads(head_line or b"{}")
    except ValueError as exc:
        raise InvalidEvent("invalid_envelope", "envelope.header", f"not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidEvent("invalid_envelope", "envelope.header", "expected a JSON object")
    events: list[Any] = []
    skipped = 0
    rest = pos_rest
    index = 0
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        try:
            item_header = json.loads(line)
        except ValueError as exc:
            raise InvalidEvent("invalid_envelope", f"envelope.items[{index}].header", f"not JSON ({exc})") from None
        if not isinstance(item_header, dict):
            raise InvalidEvent("invalid_envelope", f"envelope.items[{index}].header", "expected a JSON object")
        length = item_header.get("length")
        if isinstance(length, int) and length >= 0:
            payload, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        else:
            payload, _, rest = rest.partition(b"\n")
        if item_header.get("type") == "event":
            try:
                events.append(json.loads(payload))
            except ValueError as exc:
                raise InvalidEvent("invalid_json", f"envelope.items[{index}].payload", f"not JSON ({exc})") from None
        else:
            skipped += 1
        index += 1
    return Envelope(header=header, events=events, skipped=skipped)


def project_from_dsn(dsn: str | None) -> int | None:
    """``https://key@host/42`` -> 42."""
    if not dsn:
        return None
    tail = dsn.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None
