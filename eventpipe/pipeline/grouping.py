"""Fingerprinting: which events belong to the same issue.

Order of precedence, as in Sentry: a custom ``fingerprint`` wins (``{{ default }}`` expands to
the default components); else exceptions group by type plus in-app frames' module/function
(never line numbers, so a deploy that shifts code keeps the issue); else the message template.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

DEFAULT_MARKER = "{{ default }}"

_VARIABLE_PARTS = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{16,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "<ip>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\b\d+(\.\d+)?\b"), "<num>"),
]


def message_template(message: str) -> str:
    """Replace the variable parts of a formatted message (ids, numbers, quoted strings)."""
    text = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, placeholder in _VARIABLE_PARTS:
        text = pattern.sub(placeholder, text)
    return text[:512]


def default_components(event: dict[str, Any]) -> list[str]:
    exceptions = event.get("exception") or []
    if exceptions:
        parts: list[str] = []
        for exc in exceptions:
            parts.append(f"type:{exc.get('type', 'Error')}")
            frames = exc.get("frames") or []
            chosen = [f for f in frames if f.get("in_app")] or frames
            if chosen:
                for frame in chosen:
                    where = frame.get("module") or _basename(frame.get("filename") or frame.get("abs_path") or "?")
                    parts.append(f"frame:{where}:{frame.get('function') or '?'}")
            else:
                parts.append(f"value:{message_template(str(exc.get('value', '')))}")
        return parts
    logentry = event.get("logentry") or {}
    template = logentry.get("message") or message_template(event.get("message", ""))
    return [f"message:{template}"]


def fingerprint_components(event: dict[str, Any]) -> list[str]:
    custom = event.get("fingerprint")
    if not custom:
        return default_components(event)
    out: list[str] = []
    for part in custom:
        if part == DEFAULT_MARKER:
            out.extend(default_components(event))
        else:
            out.append(f"custom:{part}")
    return out


def fingerprint_hash(event: dict[str, Any]) -> str:
    joined = "\n".join(fingerprint_components(event))
    return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


def title_and_culprit(event: dict[str, Any]) -> tuple[str, str]:
    exceptions = event.get("exception") or []
    if exceptions:
        exc = exceptions[-1]  # the outermost (last) exception is what the user saw
        value = str(exc.get("value") or "").strip().splitlines()
        title = f"{exc.get('type', 'Error')}: {value[0]}" if value else str(exc.get("type", "Error"))
    else:
        lines = (event.get("message") or "").strip().splitlines()
        title = lines[0] if lines else "<unlabeled event>"
    culprit = event.get("culprit") or event.get("transaction") or _culprit_from_frames(exceptions)
    return title[:512], culprit[:512]


def _culprit_from_frames(exceptions: list[dict[str, Any]]) -> str:
    for exc in reversed(exceptions):
        frames = exc.get("frames") or []
        for frame in reversed(frames):
            if frame.get("in_app"):
                where = frame.get("module") or frame.get("filename") or "?"
                return f"{where} in {frame.get('function') or '?'}"
    return ""


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
