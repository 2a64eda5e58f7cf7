"""Which browser origins may send a project's events (CORS), as the reference system's
"allowed domains": ``*`` (any), an exact origin (``https://app.example.com``), a host
(``app.example.com``, any scheme and port) or a host wildcard (``*.example.com``). Requests
without an ``Origin`` header (servers, mobile apps) are not browser requests and always pass."""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOWED_HEADERS = (
    "content-type", "content-encoding", "x-sentry-auth", "authorization", "sentry-trace", "baggage",
)
EXPOSED_HEADERS = "x-sentry-error, x-sentry-rate-limits, retry-after"


def parse_origins(text: str | None) -> list[str]:
    """The stored form is whitespace- or comma-separated; empty means no browser origin."""
    return [part for part in (text or "").replace(",", " ").split() if part]


def origin_allowed(origin: str, patterns: list[str]) -> bool:
    origin = origin.strip().rstrip("/").lower()
    if not origin or origin == "null":
        return "*" in patterns
    parts = urlsplit(origin)
    host = (parts.hostname or "").lower()
    for raw in patterns:
        pattern = raw.strip().rstrip("/").lower()
        if pattern == "*":
            return True
        if "://" in pattern:
            if pattern == origin:
                return True
            continue
        bare = pattern.split(":", 1)[0]
        if bare.startswith("*."):
            if host == bare[2:] or host.endswith(bare[1:]):
                return True
        elif host == bare:
            return True
    return False


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
        "Access-Control-Max-Age": "3600",
    }
