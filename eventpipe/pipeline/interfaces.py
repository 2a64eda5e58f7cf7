"""Legacy interface names and client-address resolution: the parts of an event an old SDK spells
differently from a modern one.

Old clients (raven-python, raven-js, raven-java, sentry-cocoa 3…) and many of the reference
system's sample events use the full interface paths (``sentry.interfaces.Exception``) instead of
the short keys; the reference system accepts both, the short key winning when both are present.
``{{auto}}`` as ``user.ip_address`` asks the server to fill in the sender's address.
"""

from __future__ import annotations

from typing import Any

# The reference system's alias table (interface path -> canonical key).
INTERFACE_ALIASES: dict[str, str] = {
    "sentry.interfaces.Exception": "exception",
    "sentry.interfaces.Stacktrace": "stacktrace",
    "sentry.interfaces.Message": "logentry",
    "sentry.interfaces.User": "user",
    "sentry.interfaces.Http": "request",
    "sentry.interfaces.Breadcrumbs": "breadcrumbs",
    "sentry.interfaces.Template": "template",
    "sentry.interfaces.Csp": "csp",
    "sentry.interfaces.Hpkp": "hpkp",
    "sentry.interfaces.ExpectCT": "expectct",
    "sentry.interfaces.ExpectStaple": "expectstaple",
    "sentry.interfaces.Contexts": "contexts",
    "sentry.interfaces.Threads": "threads",
    "sentry.interfaces.DebugMeta": "debug_meta",
    "sentry.interfaces.Sdk": "sdk",
    "sentry.interfaces.Query": "query",
    # even older module paths (raven-python < 3)
    "sentry.interfaces.exception.Exception": "exception",
    "sentry.interfaces.stacktrace.Stacktrace": "stacktrace",
    "sentry.interfaces.message.Message": "logentry",
    "sentry.interfaces.user.User": "user",
    "sentry.interfaces.http.Http": "request",
    "sentry.interfaces.template.Template": "template",
}
AUTO_IP = "{{auto}}"


def canonical_interfaces(data: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy with legacy interface keys renamed to their canonical names (a canonical key
    already present wins; the alias is then dropped)."""
    if not any(key in INTERFACE_ALIASES for key in data):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        target = INTERFACE_ALIASES.get(key)
        if target is None:
            out[key] = value
        elif target not in data and target not in out:
            out[target] = value
    return out


def resolve_auto_ip(data: Any, client_ip: str | None) -> Any:
    """Replace ``user.ip_address: "{{auto}}"`` (and the legacy ``sentry.interfaces.User``) by the
    client address; without one the placeholder is removed. Returns ``data`` itself when there is
    nothing to replace, else a shallow copy (the input is never mutated)."""
    if not isinstance(data, dict):
        return data
    out = data
    for key in ("user", "sentry.interfaces.User"):
        user = data.get(key)
        if isinstance(user, dict) and user.get("ip_address") == AUTO_IP:
            fixed = {k: v for k, v in user.items() if k != "ip_address"}
            if client_ip:
                fixed["ip_address"] = client_ip
            out = {**out, key: fixed}
    return out
