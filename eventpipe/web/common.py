"""What every console page shares: the template environment, rendering with the signed-in user
and CSRF token, one-shot flash messages, and redirects back after an action (POST-redirect-GET)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from .render import FILTERS
from .security import csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(FILTERS)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], [kind, message]][-5:]


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    rt = request.app.state.rt
    context.update(
        user=getattr(request.state, "user", None),
        csrf=csrf_token(request),
        flashes=request.session.pop("flash", []),
        embedded=rt.broker.in_process,
        path=request.url.path,
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def back(request: Request, default: str) -> RedirectResponse:
    """Redirect to the page the form was on (same site only), else ``default``."""
    ref = request.headers.get("referer", "")
    base = str(request.base_url)
    target = ref[len(base) - 1:] if ref.startswith(base) else default
    return RedirectResponse(target or default, status_code=303)
