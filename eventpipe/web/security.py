"""Who may see and do what in the console: sessions, CSRF tokens, roles, sign-in throttling.

- Sessions are Starlette's signed cookies (HttpOnly, SameSite=Lax) keyed by ``web_secret`` or a
  random key generated once and kept (mode 0600) under ``EVENTPIPE_HOME``.
- :class:`RequireSession` lets nothing through without a signed-in user except ``/login`` and
  ``/static``; the user is re-read from the database on every request, so a removed user or a
  changed role takes effect at once.
- Every state-changing form carries the session's CSRF token; :func:`check_action` refuses a POST
  without it (403) and refuses viewers (403), and both refusals are written to the audit table.
- :class:`LoginThrottle` refuses sign-ins for a while after repeated failures from one address or
  for one user name.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from eventpipe.config import Settings
from eventpipe.metadata.users import audit, get_user

PUBLIC_PREFIXES = ("/login", "/static/")
SECRET_FILE = "web_secret"
# no framing (clickjacking of the action buttons), no sniffing, scripts only from /static
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
}


def session_secret(settings: Settings) -> str:
    """``web_secret`` if configured, else a key generated on first use and persisted under home."""
    if settings.web_secret:
        return settings.web_secret
    path = Path(settings.home) / SECRET_FILE
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


class RequireSession(BaseHTTPMiddleware):
    """Redirect (GET) or refuse (other methods) every request without a signed-in user."""

    def __init__(self, app: Any, db: Any) -> None:
        super().__init__(app)
        self.db = db

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path == "/login" or path.startswith(PUBLIC_PREFIXES[1]):
            response = await call_next(request)
            response.headers.update(SECURITY_HEADERS)
            return response
        name = request.session.get("user")
        user = await run_in_threadpool(get_user, self.db, name) if name else None
        if user is None:
            request.session.clear()
            if request.method in ("GET", "HEAD"):
                target = path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return Response("sign in first: GET /login", status_code=401, media_type="text/plain")
        request.state.user = user
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def check_action(request: Request, form: FormData, action: str, target: str) -> str:
    """The acting user's name when the form carries the session's CSRF token and the user is an
    admin; otherwise a 403 (recorded in the audit table)."""
    user = request.state.user
    db = request.app.state.rt.db
    sent = str(form.get("csrf") or request.headers.get("x-csrf-token") or "")
    expected = str(request.session.get("csrf") or "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        audit(db, user["name"], action, target, outcome="refused", detail={"why": "missing or wrong CSRF token"})
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and submit the form again")
    if user["role"] != "admin":
        audit(db, user["name"], action, target, outcome="refused", detail={"why": "viewer"})
        raise HTTPException(403, f"{user['name']} is a viewer: viewers cannot act; ask an admin "
                                 "(`eventpipe users add NAME --role admin`)")
    return str(user["name"])


class LoginThrottle:
    """At most ``limit`` failed sign-ins per ``window_s`` per client address and per user name."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until a sign-in is allowed again (0 when allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [self.window_s - (now - q[0]) for q in (self._recent(k, now) for k in keys) if len(q) >= self.limit]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)
