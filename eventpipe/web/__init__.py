"""``eventpipe web``: a small server-rendered console (Starlette + Jinja2, a little plain JS) for
issues, queues, workers and schedules, behind a sign-in. See :func:`eventpipe.web.app.create_app`."""

from __future__ import annotations
