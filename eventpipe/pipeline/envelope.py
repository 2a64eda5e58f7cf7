"""Sentry envelopes (``application/x-sentry-envelope``): a header line, then items, each an item
header line followed by its payload (``length`` bytes, or up to the next newline).

Semantics kept from the reference system: the envelope header's ``event_id`` is the id of the
event it carries (so a resent envelope dedupes); an item whose declared ``length`` runs past the
end of the body, or is not followed by a newline, is an error naming the item; attachments are
returned separately (they have their own size limit); every other item type is counted, so the
endpoint can answer 200 for transactions, sessions, client reports and check-ins it drops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidEvent
from .jsonload import loads_tolerant

# Item types the reference system knows; anything else is counted as "unknown" and dropped.
KNOWN_ITEM_TYPES = frozenset(
    {
        "event", "transaction", "attachment", "session", "sessions", "client_report", "check_in",
        "user_report", "feedback", "profile", "profile_chunk", "replay_event", "replay_recording",
        "replay_video", "statsd", "metric_buckets", "span", "otel_span", "log", "otel_log",
        "security", "raw_security", "form_data", "unreal_report", "nel", "trace_metric",
    }
)


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str
    attachment_type: str
    payload: bytes


@dataclass(frozen=True)
class Envelope:
    header: dict[str, Any]
    events: list[Any]  # decoded payloads of items of type "event", with the header's event_id
    attachments: list[Attachment] = field(default_factory=list)
    other_items: dict[str, int] = field(default_factory=dict)  # type -> count (sessions, transactions…)
    event_sizes: list[int] = field(default_factory=list)  # payload bytes of each event item

    @property
    def skipped(self) -> int:
        return sum(self.other_items.values())

    @property
    def event_id(self) -> str | None:
        value = self.header.get("event_id")
        return value if isinstance(value, str) else None


def looks_like_envelope(raw: bytes) -> bool:
    """Decide by parsing, not by line shape: a body that parses as one JSON value is a JSON event
    (even pretty-printed, even with ``"type"`` on its second line); an envelope is several."""
    try:
        loads_tolerant(raw)
    except ValueError:
        first, sep, rest = raw.partition(b"\n")
        if not sep:
            return False
        try:
            header = loads_tolerant(first)
        except ValueError:
            return False
        return isinstance(header, dict)
    return False


def parse_envelope(raw: bytes | bytearray | memoryview) -> Envelope:
    view = memoryview(raw)
    size = len(view)
    newline = _find_newline(view, 0)
    head = bytes(view[:newline]).strip()
    try:
        header = loads_tolerant(head or b"{}")
    except ValueError as exc:
        raise InvalidEvent("invalid_envelope", "envelope.header", f"not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InvalidEvent("invalid_envelope", "envelope.header", "expected a JSON object")
    header_id = header.get("event_id")
    events: list[Any] = []
    sizes: list[int] = []
    attachments: list[Attachment] = []
    others: Counter[str] = Counter()
    pos = newline + 1
    index = 0
    while pos < size:
        end = _find_newline(view, pos)
        line = bytes(view[pos:end]).strip()
        if not line:
            pos = end + 1
            continue
        where = f"envelope.items[{index}]"
        try:
            item = loads_tolerant(line)
        except ValueError as exc:
            raise InvalidEvent("invalid_envelope", f"{where}.header", f"not JSON ({exc})") from None
        if not isinstance(item, dict):
            raise InvalidEvent("invalid_envelope", f"{where}.header", "expected a JSON object")
        item_type = item.get("type")
        if not isinstance(item_type, str) or not item_type:
            raise InvalidEvent("invalid_envelope", f"{where}.header.type", "every item needs a 'type'")
        start = end + 1
        length = item.get("length")
        if length is not None:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise InvalidEvent("invalid_envelope", f"{where}.header.length", f"expected a byte count, got {length!r}")
            if start + length > size:
                have = max(0, size - start)
                raise InvalidEvent(
                    "truncated_item", f"{where}.payload", f"the header declares {length} bytes but only {have} follow"
                )
            stop = start + length
            if stop < size and view[stop] != 0x0A:
                raise InvalidEvent(
                    "length_mismatch", f"{where}.payload", f"the payload is longer than the declared {length} bytes"
                )
            payload = view[start:stop]
            pos = stop + 1
        else:
            stop = _find_newline(view, start) if start <= size else size
            payload = view[start:stop]
            pos = stop + 1
        if item_type == "event":
            try:
                event = loads_tolerant(bytes(payload))
            except ValueError as exc:
                raise InvalidEvent("invalid_json", f"{where}.payload", f"not JSON ({exc})") from None
            if isinstance(event, dict) and isinstance(header_id, str):
                event = {**event, "event_id": header_id}  # the envelope's id is the event's id
            events.append(event)
            sizes.append(len(payload))
        elif item_type == "attachment":
            attachments.append(
                Attachment(
                    index=len(attachments),
                    filename=str(item.get("filename") or f"attachment-{len(attachments)}"),
                    content_type=str(item.get("content_type") or "application/octet-stream"),
                    attachment_type=str(item.get("attachment_type") or "event.attachment"),
                    payload=bytes(payload),
                )
            )
        else:
            others[item_type if item_type in KNOWN_ITEM_TYPES else "unknown"] += 1
        index += 1
    return Envelope(header=header, events=events, attachments=attachments, other_items=dict(others), event_sizes=sizes)


def _find_newline(view: memoryview, start: int) -> int:
    """Index of the next newline at or after ``start``, or the end of the view."""
    found = view.obj.find(b"\n", start) if isinstance(view.obj, (bytes, bytearray)) else bytes(view).find(b"\n", start)
    return len(view) if found < 0 else found


def project_from_dsn(dsn: str | None) -> int | None:
    """``https://key@host/42`` -> 42."""
    if not dsn or not isinstance(dsn, str):
        return None
    tail = dsn.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None
