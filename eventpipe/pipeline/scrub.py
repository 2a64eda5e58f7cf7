"""PII and secret scrubbing: values under sensitive keys, and secrets inside strings, become
``[Filtered]`` before a body is stored. Runs on normalized events, so every container is a
dict or list of bounded depth."""

from __future__ import annotations

import re
from typing import Any

FILTERED = "[Filtered]"

SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|apikey|auth(orization)?|credentials?|"
    r"private[_-]?key|session(id)?|cookie|csrf|xsrf|access[_-]?key|signature|\bssn\b|card[_-]?number",
    re.IGNORECASE,
)
# key=value or key: value pairs inside strings (query strings, log lines, DSNs)
_INLINE_SECRET = re.compile(
    r"(?P<key>pass(?:word|wd)?|secret|token|api[_-]?key|apikey|authorization|access[_-]?key)"
    r"(?P<sep>\s*[=:]\s*)(?P<value>(?:Bearer\s+|Basic\s+)?[^\s&;,'\"]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_CARD = re.compile(r"\b(?:\d[ -]?){13,16}\b")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)

# Fields of an event that hold user-controlled data worth scrubbing.
SCRUBBED_FIELDS = ("extra", "request", "user", "contexts", "breadcrumbs", "tags", "message", "logentry")
_KEEP_USER_KEYS = {"id", "username", "email", "ip_address"}


def scrub_string(value: str) -> str:
    if not value:
        return value
    value = _INLINE_SECRET.sub(lambda m: f"{m.group('key')}{m.group('sep')}{FILTERED}", value)
    value = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", value)
    value = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{FILTERED}@", value)
    return _CARD.sub(FILTERED, value)


def scrub_value(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key not in keep and isinstance(key, str) and SENSITIVE_KEY.search(key):
                out[key] = FILTERED if item not in (None, "") else item
            else:
                out[key] = scrub_value(item)
        return out
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and SENSITIVE_KEY.search(value[0]):
            return [value[0], FILTERED]  # header/tag pairs: ["Authorization", "Bearer …"]
        return [scrub_value(item) for item in value]
    if isinstance(value, str):
        return scrub_string(value)
    return value


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a normalized event with secrets filtered; never mutates the input."""
    out = dict(event)
    for field in SCRUBBED_FIELDS:
        if field in out:
            keep = frozenset(_KEEP_USER_KEYS) if field == "user" else frozenset()
            out[field] = scrub_value(out[field], keep=keep)
    if "exception" in out:
        out["exception"] = [_scrub_exception(exc) for exc in out["exception"]]
    return out


def _scrub_exception(exc: dict[str, Any]) -> dict[str, Any]:
    exc = dict(exc)
    if isinstance(exc.get("value"), str):
        exc["value"] = scrub_string(exc["value"])
    frames = []
    for frame in exc.get("frames", []):
        if "vars" in frame:
            frame = {**frame, "vars": scrub_value(frame["vars"])}
        frames.append(frame)
    exc["frames"] = frames
    return exc
