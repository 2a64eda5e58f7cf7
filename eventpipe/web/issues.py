"""Issues pages: the filtered list per project with 24 h sparklines, and an issue's detail with
its latest (or chosen) event rendered from the KV store, its activity and the status actions."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from eventpipe.metadata import issue_reads
from eventpipe.metadata import issues as lifecycle
from eventpipe.metadata.queries import list_projects
from eventpipe.metadata.users import audit, audit_rows

from . import issue_actions
from .common import flash, page
from .security import check_action


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _list_data(rt: Any, params: dict[str, str]) -> dict[str, Any]:
    projects = [{"id": p.id, "name": p.name} for p in list_projects(rt.db)]
    project_id = _int(params.get("project"))
    if project_id is None and projects:
        project_id = projects[0]["id"]
    status = params.get("status", "unresolved")
    status = status if status in lifecycle.STATUSES else ""
    level = params.get("level") if params.get("level") in issue_reads.LEVELS else ""
    sort = params.get("sort") if params.get("sort") in issue_reads.SORTS else "last_seen"
    text = (params.get("q") or "").strip()
    rows = lifecycle.list_issues(rt.db, project_id=project_id, status=status or None, level=level or None,
                                 query=text or None, sort=sort, limit=200)
    issue_reads.flag_recent(rt.db, rows)
    counts = issue_reads.hourly_counts(rt.db, [r["id"] for r in rows])
    for r in rows:
        r["hourly"] = counts.get(r["id"], [])
    return {"projects": projects, "project_id": project_id, "status": status, "level": level, "sort": sort,
            "q": text, "issues": rows, "statuses": lifecycle.STATUSES, "levels": issue_reads.LEVELS,
            "sorts": issue_reads.SORTS}


def issue_list(request: Request) -> Response:
    data = _list_data(request.app.state.rt, dict(request.query_params))
    return page(request, "issues.html", **data)


def _detail_data(rt: Any, issue_id: int, event_id: str | None) -> dict[str, Any]:
    """Raises IssueNotFound; ``issue["redirected_from"]`` is set when ``issue_id`` was merged away."""
    issue = lifecycle.show_issue(rt.db, issue_id, activities=100)
    nav = issue_reads.issue_event(rt.db, issue["id"], event_id)
    body = None
    if nav["event"] is not None:
        body = issue_reads.event_body(rt.store, nav["event"]["project_id"], nav["event"]["event_id"])
    refused = [a for a in audit_rows(rt.db, target=f"issue:{issue['id']}", limit=50) if a["outcome"] != "ok"]
    return {
        "issue": issue,
        "nav": nav,
        "body": body,
        "hashes": issue["hashes"],
        "activity": sorted(issue["activity"], key=lambda a: a["created_at"] or ""),
        "refused": refused,
        "hourly": issue_reads.hourly_counts(rt.db, [issue["id"]]).get(issue["id"], []),
        "can_merge": issue_actions.CAN_MERGE,
    }


def issue_detail(request: Request) -> Response:
    issue_id = int(request.path_params["issue_id"])
    event_id = request.query_params.get("event")
    try:
        data = _detail_data(request.app.state.rt, issue_id, event_id)
    except lifecycle.IssueNotFound:
        raise HTTPException(404, f"no issue {issue_id}; see the issues list") from None
    if data["issue"]["id"] != issue_id:  # merged away: show the surviving issue under its own id
        return RedirectResponse(f"/issues/{data['issue']['id']}", status_code=303)
    if event_id and data["nav"]["event"] is None:
        raise HTTPException(404, f"issue {issue_id} has no event {event_id!r}")
    return page(request, "issue.html", **data)


async def issue_status(request: Request) -> Response:
    issue_id = int(request.path_params["issue_id"])
    form = await request.form()
    status = str(form.get("status") or "")
    target = f"issue:{issue_id}"
    user = check_action(request, form, f"issue.{status or 'status'}", target)
    rt = request.app.state.rt
    if status not in lifecycle.STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(lifecycle.STATUSES)}")
    changed = await run_in_threadpool(issue_actions.set_status, rt, issue_id, status, user)
    await run_in_threadpool(audit, rt.db, user, f"issue.{status}", target, detail={"changed": changed})
    flash(request, f"issue {issue_id} is {status}" if changed else f"issue {issue_id} was already {status}")
    return RedirectResponse(f"/issues/{issue_id}", status_code=303)


async def issue_merge(request: Request) -> Response:
    issue_id = int(request.path_params["issue_id"])
    form = await request.form()
    target = f"issue:{issue_id}"
    user = check_action(request, form, "issue.merge", target)
    into = _int(str(form.get("into") or ""))
    if into is None or into == issue_id:
        raise HTTPException(400, "give the id of another issue to merge into")
    rt = request.app.state.rt
    detail = await run_in_threadpool(issue_actions.merge, rt, issue_id, into, user)
    await run_in_threadpool(audit, rt.db, user, "issue.merge", target, detail={"into": into, **detail})
    await run_in_threadpool(audit, rt.db, user, "issue.merged_from", f"issue:{into}", detail={"from": issue_id})
    flash(request, f"issue {issue_id} merged into {into}")
    return RedirectResponse(f"/issues/{into}", status_code=303)


async def issue_unmerge(request: Request) -> Response:
    issue_id = int(request.path_params["issue_id"])
    form = await request.form()
    target = f"issue:{issue_id}"
    user = check_action(request, form, "issue.unmerge", target)
    chosen = [str(h) for h in form.getlist("hash") if str(h)]
    if not chosen:
        raise HTTPException(400, "tick at least one fingerprint hash to split off")
    rt = request.app.state.rt
    detail = await run_in_threadpool(issue_actions.unmerge, rt, issue_id, chosen, user)
    await run_in_threadpool(audit, rt.db, user, "issue.unmerge", target, detail={"hashes": chosen, **detail})
    flash(request, f"split {len(chosen)} hash(es) off issue {issue_id}")
    return RedirectResponse(f"/issues/{issue_id}", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/issues", issue_list, methods=["GET"]),
        Route("/issues/{issue_id:int}", issue_detail, methods=["GET"]),
        Route("/issues/{issue_id:int}/status", issue_status, methods=["POST"]),
        Route("/issues/{issue_id:int}/merge", issue_merge, methods=["POST"]),
        Route("/issues/{issue_id:int}/unmerge", issue_unmerge, methods=["POST"]),
    ]
