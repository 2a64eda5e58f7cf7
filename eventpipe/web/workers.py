"""Workers and schedules page: live workers from their heartbeats, periodic jobs with their last
and next slot, and the schedule actions (pause, resume, run now) through
:mod:`eventpipe.schedules.control`, recorded with the console user as the operator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventpipe.metadata.users import audit, audit_rows
from eventpipe.ops.status import alive_workers
from eventpipe.schedules import control

from .common import back, flash, page
from .security import check_action


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jobs(rt: Any) -> list[dict[str, Any]]:
    rows = control.list_jobs(rt)
    for r in rows:
        for key in ("next_run", "last_run", "last_slot"):
            r[key] = _iso(r.get(key))
    return rows


def workers_page(request: Request) -> Response:
    rt = request.app.state.rt
    return page(request, "workers.html", workers=alive_workers(rt.db), jobs=_jobs(rt))


def audit_page(request: Request) -> Response:
    return page(request, "audit.html", rows=audit_rows(request.app.state.rt.db, limit=300))


async def job_action(request: Request) -> Response:
    form = await request.form()
    job = request.path_params["job"]
    verb = request.url.path.rsplit("/", 1)[1]
    user = check_action(request, form, f"schedule.{verb}", f"job:{job}")
    rt = request.app.state.rt
    fn = {"pause": control.pause, "resume": control.resume, "run": control.run_now}[verb]
    try:
        result = await run_in_threadpool(lambda: fn(rt, job, by=f"web:{user}"))
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0]) if exc.args else f"no job {job!r}") from None
    if verb == "run" and rt.broker.in_process:
        # embedded: the broker lives in this process; run the work here or it vanishes with it
        await run_in_threadpool(rt.broker.run_until_idle)
    await run_in_threadpool(audit, rt.db, user, f"schedule.{verb}", f"job:{job}",
                            detail={k: str(v) for k, v in result.items()})
    flash(request, {"pause": f"{job} paused", "resume": f"{job} resumed",
                    "run": f"{job}: {result.get('task')} published now"}[verb])
    return back(request, "/workers")


def routes() -> list[Route]:
    return [
        Route("/workers", workers_page, methods=["GET"]),
        Route("/audit", audit_page, methods=["GET"]),
        Route("/workers/jobs/{job:str}/pause", job_action, methods=["POST"]),
        Route("/workers/jobs/{job:str}/resume", job_action, methods=["POST"]),
        Route("/workers/jobs/{job:str}/run", job_action, methods=["POST"]),
    ]
