"""The console application: routes, middleware and sign-in. Build it with :func:`create_app`
around an open runtime; ``eventpipe web`` serves it with uvicorn.

Every page reads through the same functions as the CLI (``eventpipe.metadata.*``,
``eventpipe.ops.*``, ``eventpipe.schedules.control``); nothing here talks to the database, the
broker or the KV store on its own.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eventpipe.metadata.users import audit, authenticate

from . import issues, queues, workers
from .common import HERE, page
from .security import LoginThrottle, RequireSession, session_secret

SESSION_COOKIE = "eventpipe_session"
SESSION_MAX_AGE = 12 * 3600


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/issues"


async def login_form(request: Request) -> Response:
    return page(request, "login.html", next=_safe_next(request.query_params.get("next")), error=None)


async def login(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    nxt = _safe_next(str(form.get("next") or ""))
    rt = request.app.state.rt
    throttle: LoginThrottle = request.app.state.throttle
    keys = (f"ip:{request.client.host if request.client else '?'}", f"user:{name}")
    wait = throttle.retry_after(*keys)
    if wait > 0:
        await run_in_threadpool(audit, rt.db, name or "-", "login", "console", outcome="refused",
                                detail={"why": "too many failed sign-ins"})
        return page(request, "login.html", status_code=429, next=nxt,
                    error=f"Too many failed sign-ins. Try again in {int(wait) + 1} s.")
    user = await run_in_threadpool(authenticate, rt.db, name, password)
    if user is None:
        throttle.failed(*keys)
        await run_in_threadpool(audit, rt.db, name or "-", "login", "console", outcome="failed")
        return page(request, "login.html", status_code=401, next=nxt,
                    error="Wrong user name or password. Users are created with `eventpipe users add NAME`.")
    throttle.succeeded(*keys)
    request.session.clear()  # a fresh session (and CSRF token) per sign-in
    request.session["user"] = user["name"]
    await run_in_threadpool(audit, rt.db, user["name"], "login", "console")
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form()
    if str(form.get("csrf") or "") != str(request.session.get("csrf") or "-"):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and submit the form again")
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def home(request: Request) -> Response:
    return RedirectResponse("/issues", status_code=303)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if getattr(request.state, "user", None) is None or not hasattr(request, "session"):
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")
    return page(request, "error.html", status_code=exc.status_code, message=exc.detail, code=exc.status_code)


def create_app(rt: Any) -> Starlette:
    """The console for one runtime (its settings decide embedded or RabbitMQ, SQL and KV)."""
    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        *issues.routes(),
        *queues.routes(),
        *workers.routes(),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SessionMiddleware, secret_key=session_secret(rt.settings), session_cookie=SESSION_COOKIE,
                   max_age=SESSION_MAX_AGE, same_site="lax", https_only=False),
        Middleware(RequireSession, db=rt.db),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
    app.state.rt = rt
    app.state.throttle = LoginThrottle()
    return app
