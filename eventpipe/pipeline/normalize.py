"""Validation and normalization of incoming error events (Sentry's event schema, the useful part).

``normalize_event`` takes any decoded JSON value and either returns a normalized event or raises
:class:`InvalidEvent` naming the field. Structural errors reject (no event id, wrong container
types, unreadable timestamp, no content); cosmetic ones are repaired and recorded in ``errors``,
as Sentry does, so one odd tag never loses an error report.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidEvent

LEVELS = {"fatal", "error", "warning", "info", "debug"}
LEVEL_ALIASES = {"critical": "fatal", "warn": "warning", "exception": "error", "err": "error", "log": "info"}
PLATFORMS = {
    "python", "javascript", "node", "java", "go", "ruby", "php", "csharp", "cocoa", "native",
    "elixir", "perl", "dart", "rust", "objc", "c", "swift", "kotlin", "other",
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


def normalize_event(data: Any, *, project_id: int, received: float) -> dict[str, Any]:
    """Validate and normalize one event. ``received`` is the ingest time (epoch seconds)."""
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", "$", f"an event must be a JSON object, got {type(data).__name__}")
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {
        "event_id": normalize_event_id(data.get("event_id")),
        "project_id": project_id,
        "received": received,
        "timestamp": _timestamp(data.get("timestamp"), received, errors),
        "level": _level(data.get("level"), errors),
        "platform": _platform(data.get("platform"), errors),
    }
    message = _message(data)
    if message:
        out["message"] = message[0]
        if message[1] is not None:
            out["logentry"] = {"message": message[1], "formatted": message[0]}
    exceptions = _exceptions(data.get("exception"))
    if exceptions:
        out["exception"] = exceptions
    if not message and not exceptions:
        raise InvalidEvent("no_content", "message", "an event needs a 'message', 'logentry' or 'exception'")
    if "fingerprint" in data and data["fingerprint"] is not None:
        out["fingerprint"] = _fingerprint(data["fingerprint"])
    for key in ("release", "environment", "server_name", "transaction", "culprit", "dist", "logger"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out[key] = _clip(str(value))
        else:
            errors.append({"field": key, "error": f"expected a string, got {type(value).__name__}; dropped"})
    out["tags"] = _tags(data.get("tags"), errors)
    for key in ("extra", "user", "request", "contexts", "sdk"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            out[key] = _bounded(value, key, 0)
        else:
            errors.append({"field": key, "error": f"expected an object, got {type(value).__name__}; dropped"})
    crumbs = data.get("breadcrumbs")
    if isinstance(crumbs, dict):
        crumbs = crumbs.get("values")
    if isinstance(crumbs, list):
        out["breadcrumbs"] = _bounded(crumbs[-100:], "breadcrumbs", 0)
    elif crumbs is not None:
        errors.append({"field": "breadcrumbs", "error": "expected a list; dropped"})
    if errors:
        out["errors"] = errors
    return out


def normalize_event_id(value: Any) -> str:
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str):
        raise InvalidEvent("invalid_event_id", "event_id", f"expected 32 hex digits or a UUID string, got {type(value).__name__}")
    try:
        return uuid.UUID(value.strip()).hex
    except ValueError:
        raise InvalidEvent("invalid_event_id", "event_id", f"expected 32 hex digits or a UUID, got {value[:64]!r}") from None


def _timestamp(value: Any, received: float, errors: list[dict[str, str]]) -> float:
    if value is None:
        return received
    if isinstance(value, bool):
        raise InvalidEvent("invalid_timestamp", "timestamp", "expected epoch seconds or an ISO 8601 string, got a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
        if not math.isfinite(ts) or ts < 0 or ts > 1e11:
            raise InvalidEvent("invalid_timestamp", "timestamp", f"epoch seconds out of range: {value!r}")
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEvent("invalid_timestamp", "timestamp", f"expected epoch seconds or ISO 8601, got {value[:64]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = parsed.timestamp()
    else:
        raise InvalidEvent("invalid_timestamp", "timestamp", f"expected epoch seconds or ISO 8601, got {type(value).__name__}")
    # Clock skew: Sentry clamps rather than rejects, recording why.
    if ts > received + MAX_FUTURE_SECONDS:
        errors.append({"field": "timestamp", "error": "in the future; replaced by the receive time"})
        return received
    if ts < received - MAX_AGE_SECONDS:
        errors.append({"field": "timestamp", "error": "older than 30 days; replaced by the receive time"})
        return received
    return ts


def _level(value: Any, errors: list[dict[str, str]]) -> str:
    if value is None:
        return "error"
    if isinstance(value, str):
        low = value.strip().lower()
        low = LEVEL_ALIASES.get(low, low)
        if low in LEVELS:
            return low
    errors.append({"field": "level", "error": f"unknown level {str(value)[:32]!r}; using 'error'"})
    return "error"


def _platform(value: Any, errors: list[dict[str, str]]) -> str:
    if value is None:
        return "other"
    if isinstance(value, str):
        low = value.strip().lower()
        low = PLATFORM_ALIASES.get(low, low)
        if low in PLATFORMS:
            return low
    errors.append({"field": "platform", "error": f"unknown platform {str(value)[:32]!r}; using 'other'"})
    return "other"


def _message(data: dict[str, Any]) -> tuple[str, str | None] | None:
    """(formatted message, template or None)."""
    logentry = data.get("logentry", data.get("sentry.interfaces.Message"))
    message = data.get("message")
    if isinstance(message, dict) and logentry is None:
        logentry, message = message, None
    if logentry is not None:
        if not isinstance(logentry, dict):
            raise InvalidEvent("invalid_message", "logentry", f"expected an object, got {type(logentry).__name__}")
        template = logentry.get("message")
        formatted = logentry.get("formatted")
        params = logentry.get("params")
        if template is not None and not isinstance(template, str):
            raise InvalidEvent("invalid_message", "logentry.message", "expected a string")
        if formatted is not None and not isinstance(formatted, str):
            raise InvalidEvent("invalid_message", "logentry.formatted", "expected a string")
        if formatted is None and template is not None:
            formatted = _format(template, params)
        if formatted:
            return _clip(formatted), _clip(template) if template else None
    if message is None:
        return None
    if not isinstance(message, str):
        raise InvalidEvent("invalid_message", "message", f"expected a string, got {type(message).__name__}")
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


def _exceptions(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("values", [value] if "type" in value else None)
    if not isinstance(value, list):
        raise InvalidEvent("invalid_exception", "exception", "expected {'values': [...]} or a list of exceptions")
    out = []
    for i, exc in enumerate(value[:MAX_EXCEPTIONS]):
        path = f"exception.values[{i}]"
        if not isinstance(exc, dict):
            raise InvalidEvent("invalid_exception", path, f"expected an object, got {type(exc).__name__}")
        etype, evalue = exc.get("type"), exc.get("value")
        if etype is not None and not isinstance(etype, str):
            raise InvalidEvent("invalid_exception", f"{path}.type", "expected a string")
        if evalue is not None and not isinstance(evalue, (str, int, float)):
            raise InvalidEvent("invalid_exception", f"{path}.value", "expected a string")
        if not etype and evalue is None:
            raise InvalidEvent("invalid_exception", path, "an exception needs a 'type' or a 'value'")
        item: dict[str, Any] = {"type": _clip(etype or "Error"), "value": _clip(str(evalue)) if evalue is not None else ""}
        if isinstance(exc.get("module"), str):
            item["module"] = _clip(exc["module"])
        # ``frames`` inline is this module's own output shape: normalizing twice changes nothing
        stacktrace = exc.get("stacktrace") if exc.get("stacktrace") is not None or "frames" not in exc else {"frames": exc["frames"]}
        item["frames"] = _frames(stacktrace, f"{path}.stacktrace")
        out.append(item)
    return out


def _frames(stacktrace: Any, path: str) -> list[dict[str, Any]]:
    if stacktrace is None:
        return []
    if not isinstance(stacktrace, dict) or not isinstance(stacktrace.get("frames", []), list):
        raise InvalidEvent("invalid_stacktrace", path, "expected {'frames': [...]}")
    frames = []
    raw_frames = stacktrace.get("frames", [])
    for i, frame in enumerate(raw_frames[-MAX_FRAMES:]):
        if not isinstance(frame, dict):
            raise InvalidEvent("invalid_stacktrace", f"{path}.frames[{i}]", f"expected an object, got {type(frame).__name__}")
        f: dict[str, Any] = {}
        for key in ("filename", "abs_path", "module", "function", "context_line", "package"):
            value = frame.get(key)
            if isinstance(value, str):
                f[key] = _clip(value)
        lineno = frame.get("lineno")
        if isinstance(lineno, int) and not isinstance(lineno, bool):
            f["lineno"] = lineno
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


def _fingerprint(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidEvent("invalid_fingerprint", "fingerprint", "expected a non-empty list of strings")
    out = []
    for i, part in enumerate(value[:32]):
        if isinstance(part, bool) or not isinstance(part, (str, int, float)):
            raise InvalidEvent("invalid_fingerprint", f"fingerprint[{i}]", "expected a string")
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
        errors.append({"field": "tags", "error": "expected an object or a list of [key, value] pairs; dropped"})
        return []
    out = []
    for key, val in pairs[:200]:
        if isinstance(key, str) and isinstance(val, (str, int, float)) and not isinstance(val, bool) and key:
            out.append([_clip(key, 200), _clip(str(val), 200)])
        else:
            errors.append({"field": f"tags.{str(key)[:32]}", "error": "tag keys and values must be strings; dropped"})
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
