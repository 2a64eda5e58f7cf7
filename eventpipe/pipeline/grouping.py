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
UNLABELED = "<unlabeled event>"
MAX_CULPRIT_LENGTH = 200

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
            if frames:
                parts.extend(_frame_components(frames))
            else:
                parts.append(f"value:{message_template(str(exc.get('value', '')))}")
        return parts
    frames = (event.get("stacktrace") or {}).get("frames") or []
    if frames:  # a stacktrace-only event groups by its frames, as the reference does
        return ["stacktrace", *_frame_components(frames)]
    logentry = event.get("logentry") or {}
    template = logentry.get("message") or message_template(event.get("message", ""))
    return [f"message:{template}"] if template else [f"title:{event_title(event)}"]


def _frame_components(frames: list[dict[str, Any]]) -> list[str]:
    chosen = [f for f in frames if f.get("in_app")] or frames
    return [
        f"frame:{frame.get('module') or _basename(frame.get('filename') or frame.get('abs_path') or '?')}:{frame.get('function') or '?'}"
        for frame in chosen
    ]


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
    """The issue title and culprit by the reference system's rules (``eventtypes`` and
    ``culprit.generate_culprit``): a client-given culprit or transaction wins; else the culprit of
    the last stacktrace, from its most recent in-app frame or, when none is in app, its top frame."""
    culprit = event.get("culprit") or event.get("transaction") or generate_culprit(event)
    return event_title(event)[:512], str(culprit)[:MAX_CULPRIT_LENGTH]


def event_title(event: dict[str, Any]) -> str:
    exceptions = event.get("exception") or []
    if exceptions:
        exc = exceptions[-1]  # the last exception is the one raised most recently
        if (exc.get("mechanism") or {}).get("synthetic"):
            # a synthetic type (a signal, a crash report) says nothing: name the crash location
            return _crash_function(exc.get("frames") or []) or "<unknown>"
        etype = str(exc.get("type") or "Error")[:128]
        lines = str(exc.get("value") or "").splitlines()
        first = lines[0] if lines else ""
        return f"{etype}: {truncatechars(first, 100)}" if first else etype
    if event.get("type") == "error":
        return "<unknown>"  # exception values were sent, none usable: the reference's error title
    message = (event.get("message") or "").strip()
    if message:
        return truncatechars(message.splitlines()[0], 100)
    return UNLABELED


def generate_culprit(event: dict[str, Any]) -> str:
    platform = event.get("platform")
    exceptions = event.get("exception") or []
    if exceptions:
        if (exceptions[-1].get("mechanism") or {}).get("synthetic"):
            return ""  # the reference gives synthetic events no culprit
        stacktraces = [exc["frames"] for exc in exceptions if exc.get("frames")]
    else:
        frames = (event.get("stacktrace") or {}).get("frames") or []
        stacktraces = [frames] if frames else []
    culprit = stacktrace_culprit(stacktraces[-1], platform) if stacktraces else ""
    if not culprit:
        request = event.get("request") or {}
        culprit = request.get("url") if isinstance(request.get("url"), str) else ""
    return truncatechars(culprit or "", MAX_CULPRIT_LENGTH)


def stacktrace_culprit(frames: list[dict[str, Any]], platform: str | None) -> str:
    default: str | None = None
    for frame in reversed(frames):
        if frame.get("in_app"):
            culprit = frame_culprit(frame, platform)
            if culprit:
                return culprit
        elif default is None:
            default = frame_culprit(frame, platform)
    return default or ""


def frame_culprit(frame: dict[str, Any], platform: str | None) -> str:
    """``module in function``; ``function(file)`` for JavaScript and Node; the function alone
    for native code; nothing for a frame with neither module nor filename."""
    platform = frame.get("platform") or platform
    if platform in ("objc", "cocoa", "native"):
        return frame.get("function") or "?"
    fileloc = frame.get("module") or frame.get("filename")
    if not fileloc:
        return ""
    if platform in ("javascript", "node"):
        return f"{frame.get('function') or '?'}({fileloc})"
    return f"{fileloc} in {frame.get('function') or '?'}"


def truncatechars(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _crash_function(frames: list[dict[str, Any]]) -> str:
    chosen = [f for f in frames if f.get("in_app")] or frames
    return str(chosen[-1].get("function") or "") if chosen else ""


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
