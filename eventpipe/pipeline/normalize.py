"""Validation and normalization of incoming error events (Sentry's event schema, the useful part).

``normalize_event`` takes any decoded JSON value and returns a normalized event; only a value
that cannot be an event at all (not a JSON object) raises :class:`InvalidEvent`. Every other
defect (a null exception or frame, a non-string message, a bad timestamp or event id, legacy
interface names) is repaired as the reference system does: the bad part is dropped or replaced
and recorded in the event's ``errors`` list, so one odd field never loses an error report. An
event with neither message nor exception is kept (its title is ``<unlabeled event>``).
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import InvalidEvent
from .interfaces import canonical_interfaces, resolve_auto_ip

LEVELS = {"fatal", "error", "warning", "info", "debug"}
NUMERIC_LEVELS = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "fatal"}
LEVEL_ALIASES = {"critical": "fatal", "warn": "warning", "exception": "error", "err": "error", "log": "info"}
PLATFORMS = {
    "python", "javascript", "node", "java", "go", "ruby", "php", "csharp", "cocoa", "native",
    "elixir", "perl", "dart", "rust", "objc", "c", "swift", "kotlin", "groovy", "haskell", "native", "other",
}
PLATFORM_ALIASES = {"js": "javascript", "nodejs": "node", "py": "python", "dotnet": "csharp", "cs": "csharp"}
MAX_DEPTH = 8
MAX_STRING = 8192
MAX_FRAMES = 250
MAX_EXCEPTIONS = 25
MAX_FUTURE_SECONDS = 60.0
MAX_AGE_SECONDS = 30 * 86400.0

# Library code is not "in app": paths and module prefixes that mark third-party frames.
_LIBRARY_PATH = re.compile(r"(site-packages|dist-packages|node_modules|/usr/lib/|/lib/python\d|<frozen|webpack/bootstrap)")
_LIBRARY_MODULE = re.compile(
    r"^(java\.|javax\.|sun\.|jdk\.|kotlin\.|android\.|com\.android\.|dalvik\.|org\.apache\.|org\.springframework\.|"
    r"django\.|flask\.|werkzeug\.|celery\.|sqlalchemy\.|requests\.|urllib3\.|asyncio\.|concurrent\.|threading$|"
    r"logging\.|http\.|socket$|ssl$|gunicorn\.|uvicorn\.|starlette\.|react-dom|react$|express|Microsoft\.|System\.)"
)
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
FRAME_STRINGS = (
    "filename", "abs_path", "module", "function", "context_line", "package", "platform", "symbol", "instruction_addr",
)


def normalize_event(data: Any, *, project_id: int, received: float, client_ip: str | None = None) -> dict[str, Any]:
    """Validate and normalize one event. ``received`` is the ingest time (epoch seconds);
    ``client_ip`` (HTTP ingest) replaces ``user.ip_address: "{{auto}}"``.

    Only a value that is not a JSON object is rejected; every other defect is repaired (the bad
    part dropped or replaced) and recorded in ``errors`` as ``{"type", "field", "error"}``."""
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", "$", f"an event must be a JSON object, got {type(data).__name__}")
    data = canonical_interfaces(resolve_auto_ip(data, client_ip))
    errors = _prior_errors(data.get("errors"))  # kept, so normalizing twice changes nothing
    out: dict[str, Any] = {
        "event_id": _event_id(data.get("event_id"), errors),
        "project_id": project_id,
        "received": received,
        "timestamp": _timestamp(data.get("timestamp"), received, errors),
        "level": _level(data.get("level"), errors),
        "platform": _platform(data.get("platform"), errors),
    }
    message = _message(data, errors)
    if message:
        out["message"] = message[0]
        if message[1] is not None:
            out["logentry"] = {"message": message[1], "formatted": message[0]}
    raw_exception = data.get("exception")
    exceptions = _exceptions(raw_exception, errors)
    if exceptions:
        out["exception"] = exceptions
    # The reference's event type: "error" when the client sent exception values, even if every
    # one of them had to be dropped (such an event is titled "<unknown>", not "<unlabeled event>").
    dropped_all = data.get("type") == "error" and any(e["field"].startswith("exception") for e in errors)
    out["type"] = "error" if _has_exception_values(raw_exception) or dropped_all else "default"
    if data.get("stacktrace") is not None:
        # frame vars dropped here: scrub_event filters exception frames' vars only
        frames = [{k: v for k, v in f.items() if k != "vars"} for f in _frames(data["stacktrace"], "stacktrace", errors)]
        if frames:
            out["stacktrace"] = {"frames": frames}
    if data.get("fingerprint") is not None:
        fingerprint = _fingerprint(data["fingerprint"], errors)
        if fingerprint:
            out["fingerprint"] = fingerprint
    for key in ("release", "environment", "server_name", "transaction", "culprit", "dist", "logger"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[key] = _clip(str(value))
        else:
            _error(errors, "invalid_data", key, f"expected a string, got {type(value).__name__}; dropped")
    out["tags"] = _tags(data.get("tags"), errors)
    # (threads are not kept: their frames' vars would bypass scrubbing)
    for key in ("extra", "user", "request", "contexts", "sdk", "template", "csp", "debug_meta", "modules"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            out[key] = _bounded(value, key, 0)
        else:
            _error(errors, "invalid_data", key, f"expected an object, got {type(value).__name__}; dropped")
    crumbs = data.get("breadcrumbs")
    if isinstance(crumbs, dict):
        crumbs = crumbs.get("values")
    if isinstance(crumbs, list):
        out["breadcrumbs"] = _bounded([c for c in crumbs[-100:] if isinstance(c, dict)], "breadcrumbs", 0)
    elif crumbs is not None:
        _error(errors, "invalid_data", "breadcrumbs", "expected a list; dropped")
    if errors:
        out["errors"] = errors[:50]
    return out


def _prior_errors(value: Any) -> list[dict[str, str]]:
    """Repairs recorded by an earlier normalization (or sent by a client) that have our shape."""
    if not isinstance(value, list):
        return []
    return [
        {"type": str(e["type"])[:64], "field": str(e["field"])[:200], "error": str(e["error"])[:500]}
        for e in value[:50]
        if isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("type", "field", "error"))
    ]


def _has_exception_values(value: Any) -> bool:
    if isinstance(value, dict):
        value = value.get("values", [value] if ("type" in value or "value" in value) else None)
    return isinstance(value, list) and bool(value)


def _error(errors: list[dict[str, str]], kind: str, field: str, text: str) -> None:
    errors.append({"type": kind, "field": field, "error": text})


def normalize_event_id(value: Any) -> str:
    """A client-given id as 32 hex digits; raises InvalidEvent when it is not a UUID."""
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str):
        raise InvalidEvent("invalid_event_id", "event_id", f"expected 32 hex digits or a UUID string, got {type(value).__name__}")
    try:
        return uuid.UUID(value.strip()).hex
    except ValueError:
        raise InvalidEvent("invalid_event_id", "event_id", f"expected 32 hex digits or a UUID, got {value[:64]!r}") from None


def event_id_of(data: dict[str, Any]) -> str:
    """The id :func:`normalize_event` gives this event (a bad one replaced by an id derived from
    it): ingest needs only this, and leaves the rest of normalization to the processing stage."""
    return _event_id(data.get("event_id"), [])


def _event_id(value: Any, errors: list[dict[str, str]]) -> str:
    try:
        return normalize_event_id(value)
    except InvalidEvent as exc:
        # Derived from the bad value, so a client resending the same event is still deduplicated.
        _error(errors, "invalid_data", "event_id", f"{exc.detail}; replaced")
        return uuid.uuid5(uuid.NAMESPACE_OID, repr(value)[:1000]).hex


def _timestamp(value: Any, received: float, errors: list[dict[str, str]]) -> float:
    if value is None:
        return received
    ts: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
        if not math.isfinite(ts) or ts < 0 or ts > 1e11:
            ts = None
    elif isinstance(value, str):
        text = value.strip()
        try:
            ts = float(text)  # epoch seconds as a string (old JavaScript clients)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
                ts = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
            except ValueError:
                ts = None
        if ts is not None and (not math.isfinite(ts) or ts < 0 or ts > 1e11):
            ts = None
    if ts is None:
        _error(errors, "invalid_data", "timestamp", f"not epoch seconds or ISO 8601: {str(value)[:64]!r}; replaced by the receive time")
        return received
    # Clock skew: the reference clamps rather than rejects, recording why.
    if ts > received + MAX_FUTURE_SECONDS:
        _error(errors, "future_timestamp", "timestamp", "in the future; replaced by the receive time")
        return received
    if ts < received - MAX_AGE_SECONDS:
        _error(errors, "past_timestamp", "timestamp", "older than 30 days; replaced by the receive time")
        return received
    return ts


def _level(value: Any, errors: list[dict[str, str]]) -> str:
    if value is None:
        return "error"
    if isinstance(value, int) and not isinstance(value, bool) and value in NUMERIC_LEVELS:
        return NUMERIC_LEVELS[value]  # old clients sent Python logging levels
    if isinstance(value, str):
        low = value.strip().lower()
        low = LEVEL_ALIASES.get(low, low)
        if low in LEVELS:
            return low
    _error(errors, "invalid_data", "level", f"unknown level {str(value)[:32]!r}; using 'error'")
    return "error"


def _platform(value: Any, errors: list[dict[str, str]]) -> str:
    if value is None:
        return "other"
    if isinstance(value, str):
        low = value.strip().lower()
        low = PLATFORM_ALIASES.get(low, low)
        if low in PLATFORMS:
            return low
    _error(errors, "invalid_data", "platform", f"unknown platform {str(value)[:32]!r}; using 'other'")
    return "other"


def _message(data: dict[str, Any], errors: list[dict[str, str]]) -> tuple[str, str | None] | None:
    """(formatted message, template or None) from ``logentry`` or ``message``; bad parts dropped."""
    logentry = data.get("logentry")
    message = data.get("message")
    if isinstance(message, dict) and logentry is None:
        logentry, message = message, None
    if isinstance(logentry, str):
        logentry = {"formatted": logentry}
    if logentry is not None and not isinstance(logentry, dict):
        _error(errors, "invalid_data", "logentry", f"expected an object, got {type(logentry).__name__}; dropped")
        logentry = None
    if logentry is not None:
        template = logentry.get("message")
        formatted = logentry.get("formatted")
        if template is not None and not isinstance(template, str):
            _error(errors, "invalid_data", "logentry.message", "expected a string; dropped")
            template = None
        if formatted is not None and not isinstance(formatted, str):
            _error(errors, "invalid_data", "logentry.formatted", "expected a string; dropped")
            formatted = None
        if not formatted and template is not None:
            formatted = _format(template, logentry.get("params"))
        if formatted and formatted.strip():
            return _clip(formatted), _clip(template) if template else None
    if message is None:
        return None
    if isinstance(message, (int, float)) and not isinstance(message, bool):
        message = str(message)
    if not isinstance(message, str):
        _error(errors, "invalid_data", "message", f"expected a string, got {type(message).__name__}; dropped")
        return None
    return (_clip(message), None) if message.strip() else None


def _format(template: str, params: Any) -> str:
    if isinstance(params, list):
        try:
            return template % tuple(params)
        except (TypeError, ValueError, OverflowError):
            return template
    if isinstance(params, dict):
        try:
            return template % params
        except (TypeError, ValueError, KeyError, OverflowError):
            return template
    return template


def _exceptions(value: Any, errors: list[dict[str, str]]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("values", [value] if ("type" in value or "value" in value) else None)
    if not isinstance(value, list):
        _error(errors, "invalid_data", "exception", "expected {'values': [...]} or a list of exceptions; dropped")
        return []
    out = []
    offset = max(0, len(value) - MAX_EXCEPTIONS)  # the last (outermost) exceptions matter most
    for i, exc in enumerate(value[offset:], start=offset):
        path = f"exception.values[{i}]"
        if not isinstance(exc, dict):
            _error(errors, "invalid_data", path, f"expected an object, got {type(exc).__name__}; dropped")
            continue
        etype, evalue = exc.get("type"), exc.get("value")
        if etype is not None and not isinstance(etype, str):
            _error(errors, "invalid_data", f"{path}.type", "expected a string; dropped")
            etype = None
        if evalue is not None and not isinstance(evalue, str):
            evalue = evalue if isinstance(evalue, (int, float)) else orjson.dumps(evalue, option=orjson.OPT_SORT_KEYS).decode()
        if not etype and not evalue:
            _error(errors, "invalid_data", path, "an exception needs a 'type' or a 'value'; dropped")
            continue
        item: dict[str, Any] = {"type": _clip(etype or "Error"), "value": _clip(str(evalue)) if evalue is not None else ""}
        if isinstance(exc.get("module"), str):
            item["module"] = _clip(exc["module"])
        if isinstance(exc.get("mechanism"), dict):
            item["mechanism"] = _bounded(exc["mechanism"], "mechanism", 0)
        # ``frames`` inline is this module's own output shape: normalizing twice changes nothing
        stacktrace = exc.get("stacktrace") if exc.get("stacktrace") is not None or "frames" not in exc else {"frames": exc["frames"]}
        item["frames"] = _frames(stacktrace, f"{path}.stacktrace", errors)
        out.append(item)
    return out


def _frames(stacktrace: Any, path: str, errors: list[dict[str, str]]) -> list[dict[str, Any]]:
    if stacktrace is None:
        return []
    raw_frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if raw_frames is None:
        raw_frames = []
    if not isinstance(raw_frames, list):
        _error(errors, "invalid_data", path, "expected {'frames': [...]}; dropped")
        return []
    frames = []
    offset = max(0, len(raw_frames) - MAX_FRAMES)
    for i, frame in enumerate(raw_frames[offset:], start=offset):
        if not isinstance(frame, dict):
            _error(errors, "invalid_data", f"{path}.frames[{i}]", f"expected an object, got {type(frame).__name__}; dropped")
            continue
        f: dict[str, Any] = {}
        for key in FRAME_STRINGS:
            value = frame.get(key)
            if isinstance(value, str):
                f[key] = _clip(value)
        for key in ("lineno", "colno"):
            number = frame.get(key)
            if isinstance(number, int) and not isinstance(number, bool):
                f[key] = number
        in_app = frame.get("in_app")
        f["in_app"] = in_app if isinstance(in_app, bool) else is_in_app(f)
        if isinstance(frame.get("vars"), dict):
            f["vars"] = _bounded(frame["vars"], "vars", 0)
        frames.append(f)
    return frames


def is_in_app(frame: dict[str, Any]) -> bool:
    """A frame is application code unless its path or module says it is a library."""
    path = frame.get("abs_path") or frame.get("filename") or ""
    module = frame.get("module") or ""
    if path and _LIBRARY_PATH.search(path):
        return False
    if module and _LIBRARY_MODULE.search(module):
        return False
    return bool(path or module)


def _fingerprint(value: Any, errors: list[dict[str, str]]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        _error(errors, "invalid_data", "fingerprint", "expected a non-empty list of strings; using the default grouping")
        return []
    out = []
    for i, part in enumerate(value[:32]):
        if isinstance(part, bool) or not isinstance(part, (str, int, float)):
            _error(errors, "invalid_data", f"fingerprint[{i}]", "expected a string; dropped")
            continue
        out.append(_clip(str(part), 512))
    return out


def _tags(value: Any, errors: list[dict[str, str]]) -> list[list[str]]:
    if value is None:
        return []
    pairs: list[tuple[Any, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [(p[0], p[1]) for p in value]
    else:
        _error(errors, "invalid_data", "tags", "expected an object or a list of [key, value] pairs; dropped")
        return []
    out = []
    for key, val in pairs[:200]:
        if isinstance(key, str) and isinstance(val, (str, int, float)) and not isinstance(val, bool) and key:
            out.append([_clip(key, 200), _clip(str(val), 200)])
        else:
            _error(errors, "invalid_data", f"tags.{str(key)[:32]}", "tag keys and values must be strings; dropped")
    return sorted(out)


def _bounded(value: Any, path: str, depth: int) -> Any:
    """Copy JSON with bounded depth and string length, so a hostile body cannot blow up storage."""
    if depth >= MAX_DEPTH:
        return "[depth limit]"
    if isinstance(value, dict):
        return {str(k)[:200]: _bounded(v, path, depth + 1) for k, v in list(value.items())[:200]}
    if isinstance(value, list):
        return [_bounded(v, path, depth + 1) for v in value[:200]]
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clip(text: str, limit: int = MAX_STRING) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
