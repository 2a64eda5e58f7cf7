"""Cron monitor check-ins over HTTP: ``POST /api/{project}/cron/{slug}/`` and the envelope
``check_in`` item of the reference system.

The simple route takes ``{"status": "ok"|"error"|"in_progress", "check_in_id": …, "duration": s}``
(every field optional; status defaults to ok, and ``?status=`` works for ``curl -X POST``). It is
authenticated with the project's ingest key exactly like the store endpoint. :func:`checkin_routes`
returns the routes to mount in the ingest app; :func:`envelope_checkins` pulls ``check_in`` items
out of an envelope body for :func:`eventpipe.notify.monitors.record_checkin`.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eventpipe.metadata.models import Project
from eventpipe.notify.monitors import UnknownMonitor, record_checkin
from eventpipe.pipeline.monitors import MonitorError

if TYPE_CHECKING:
    from eventpipe.tasks.api import TaskContext

_KEY_RE = re.compile(r"sentry_key=([0-9a-fA-F]+)")
MAX_BODY = 64 * 1024


def _given_key(request: Request) -> str | None:
    for header in ("x-sentry-auth", "authorization"):
        match = _KEY_RE.search(request.headers.get(header, ""))
        if match:
            return match.group(1)
    return request.query_params.get("sentry_key")


def envelope_checkins(raw: bytes) -> list[dict[str, Any]]:
    """Payloads of the envelope's ``check_in`` items (other items are left to the event path)."""
    out: list[dict[str, Any]] = []
    _, _, rest = raw.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        try:
            header = json.loads(line)
        except ValueError:
            break
        length = header.get("length") if isinstance(header, dict) else None
        if isinstance(length, int) and length >= 0:
            payload, rest = rest[:length], rest[length:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        if isinstance(header, dict) and header.get("type") == "check_in":
            try:
                item = json.loads(payload)
            except ValueError:
                continue
            if isinstance(item, dict):
                out.append(item)
    return out


def record_payload(rt: TaskContext, project_id: int, slug: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """Record one check-in given as the reference system's payload (``monitor_slug``, ``status``,
    ``check_in_id``, ``duration`` in seconds)."""
    slug = slug or payload.get("monitor_slug")
    if not slug:
        raise MonitorError("check-in without monitor_slug")
    duration = payload.get("duration")
    return record_checkin(
        rt.db,
        project_id,
        str(slug),
        str(payload.get("status") or "ok"),
        checkin_id=str(payload["check_in_id"]) if payload.get("check_in_id") else None,
        duration_ms=int(float(duration) * 1000) if isinstance(duration, int | float) else None,
    )


def checkin_routes(rt: TaskContext) -> list[Route]:
    """Routes for the ingest app: ``app.routes.extend(checkin_routes(rt))`` or ``Starlette(routes=[…])``."""

    def project_key(project_id: int) -> str | None:
        with rt.db.session() as s:
            project = s.get(Project, project_id)
            return project.ingest_key if project is not None else None

    async def checkin(request: Request) -> JSONResponse:
        project_id = int(request.path_params["project_id"])
        given = _given_key(request)
        if not given:
            return JSONResponse({"detail": "missing project key: send X-Sentry-Auth: Sentry sentry_key=<ingest key>"}, status_code=401)
        expected = await run_in_threadpool(project_key, project_id)
        if not hmac.compare_digest(given.encode(), (expected or "x" * len(given)).encode()) or expected is None:
            return JSONResponse({"detail": "the key does not match this project; check the DSN"}, status_code=403)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"detail": f"check-in body exceeds {MAX_BODY} bytes"}, status_code=413)
        payload: dict[str, Any] = {}
        if raw.strip():
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                return JSONResponse({"detail": f"body is not JSON: {exc}"}, status_code=400)
            if not isinstance(payload, dict):
                return JSONResponse({"detail": "body must be a JSON object like {\"status\": \"ok\"}"}, status_code=400)
        if "status" in request.query_params:
            payload["status"] = request.query_params["status"]
        try:
            result = await run_in_threadpool(record_payload, rt, project_id, request.path_params["slug"], payload)
        except UnknownMonitor as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except MonitorError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse(result, status_code=202)

    return [Route("/api/{project_id:int}/cron/{slug}/", checkin, methods=["POST"])]
