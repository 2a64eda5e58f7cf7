"""Queues page: every queue on every node (or the in-process ones in embedded mode), federation
links, drained nodes, paused queues and dead letters, refreshed by the page every few seconds;
and the operator actions on them (pause/resume, drain/undrain with a confirmation step, replay or
purge a dead letter after showing its reason and traceback)."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from eventpipe.metadata.users import audit
from eventpipe.metadata import flags as state
from eventpipe.ops import dlq
from eventpipe.ops.nodes import OpsError, nodes_for
from eventpipe.ops.status import collect, embedded_rows

from .common import back, flash, page
from .security import check_action

log = logging.getLogger("eventpipe.web")
DLQ_LIMIT = 200


def _queues_data(rt: Any) -> dict[str, Any]:
    report = collect(rt)
    rows = [asdict(r) for r in (embedded_rows(rt) if rt.broker.in_process else report.queues)]
    paused = {p["queue"]: p for p in state.paused(rt.db)}
    drained = state.load_drained_nodes(rt.db)
    closed = state.load_closed_queues(rt.db)
    errors = list(report.errors)
    try:
        letters = dlq.walk(rt, dlq.Filter(), limit=DLQ_LIMIT)
        dead = [d.to_dict() for d in letters.items[:DLQ_LIMIT]]
        errors += letters.errors
    except (OpsError, OSError) as exc:
        dead = []
        errors.append(f"dead letters: {exc}")
    dead_per_queue: dict[str, int] = {}
    for d in dead:
        dead_per_queue[d["queue"]] = dead_per_queue.get(d["queue"], 0) + 1
    nodes: list[dict[str, Any]] = []
    if not rt.broker.in_process:
        try:
            nodes = [{"node": n.host_port, "drained": n.host_port in drained} for n in nodes_for(rt.settings)]
        except OpsError as exc:
            errors.append(str(exc))
    logical = sorted(set(rt.registry.queues()) | {r["queue"] for r in rows})
    return {
        "rows": rows, "totals": report.totals, "links": report.links, "nodes": nodes, "paused": paused,
        "closed": sorted(closed), "dead": dead, "dead_per_queue": dead_per_queue, "errors": errors,
        "queues": logical, "workers": report.workers,
        "lag_threshold": report.lag_threshold_seconds, "backlog_threshold": report.backlog_threshold,
    }


def queues_page(request: Request) -> Response:
    data = _queues_data(request.app.state.rt)
    name = "queues_live.html" if request.query_params.get("fragment") else "queues.html"
    return page(request, name, **data)


def _known_queue(rt: Any, queue: str) -> str:
    if queue not in rt.registry.queues():
        raise HTTPException(400, f"no queue {queue!r}; declared queues: {', '.join(rt.registry.queues())}")
    return queue


async def queue_pause(request: Request) -> Response:
    form = await request.form()
    queue = str(form.get("queue") or "")
    action = "queue.pause" if request.url.path.rsplit("/", 1)[1] == "pause" else "queue.resume"
    user = check_action(request, form, action, f"queue:{queue}")
    rt = request.app.state.rt
    _known_queue(rt, queue)
    if action == "queue.pause":
        changed = await run_in_threadpool(state.pause_queue, rt.db, queue, f"web console, {user}")
        flash(request, f"{queue} paused: workers stop taking its messages within seconds" if changed else f"{queue} was already paused")
    else:
        changed = await run_in_threadpool(state.resume_queue, rt.db, queue)
        flash(request, f"{queue} resumed" if changed else f"{queue} was not paused")
    await run_in_threadpool(audit, rt.db, user, action, f"queue:{queue}", detail={"changed": changed})
    return back(request, "/queues")


def node_confirm(request: Request) -> Response:
    """The confirmation step before draining a node: what will happen, and one button."""
    node = request.query_params.get("node", "")
    rt = request.app.state.rt
    known = [] if rt.broker.in_process else [n.host_port for n in nodes_for(rt.settings)]
    if node not in known:
        raise HTTPException(400, f"no node {node!r}; configured nodes: {', '.join(known) or 'none (embedded mode)'}")
    return page(request, "confirm_drain.html", node=node, others=[n for n in known if n != node])


def _drain_in_background(rt: Any, node: str, user: str) -> None:
    from eventpipe.ops.moves import drain_node_now

    def run() -> None:
        try:
            result = drain_node_now(rt, node)
            audit(rt.db, user, "node.drain.done", f"node:{node}", detail={"moved": result.moved, "left": result.left})
        except Exception as exc:  # noqa: BLE001 - recorded for the operator; the node stays flagged
            log.warning("draining %s failed: %s", node, exc)
            audit(rt.db, user, "node.drain.done", f"node:{node}", outcome="failed", detail={"error": str(exc)})

    threading.Thread(target=run, name=f"drain-{node}", daemon=True).start()


async def node_action(request: Request) -> Response:
    form = await request.form()
    node = str(form.get("node") or "")
    verb = request.url.path.rsplit("/", 1)[1]
    user = check_action(request, form, f"node.{verb}", f"node:{node}")
    rt = request.app.state.rt
    known = [] if rt.broker.in_process else [n.host_port for n in nodes_for(rt.settings)]
    if node not in known:
        raise HTTPException(400, f"no node {node!r}; configured nodes: {', '.join(known) or 'none (embedded mode)'}")
    if verb == "drain":
        if form.get("confirm") != "yes":
            return RedirectResponse(f"/queues/nodes/confirm?node={node}", status_code=303)
        await run_in_threadpool(state.mark_drained, rt.db, node, f"web console, {user}")
        _drain_in_background(rt, node, user)
        flash(request, f"{node} drained: publishers skip it; its backlog is moving to the other nodes")
    else:
        changed = await run_in_threadpool(state.clear_drained, rt.db, node)
        flash(request, f"{node} undrained: publishers use it again" if changed else f"{node} was not drained")
    await run_in_threadpool(audit, rt.db, user, f"node.{verb}", f"node:{node}")
    return RedirectResponse("/queues", status_code=303)


def dead_letter(request: Request) -> Response:
    ident = request.query_params.get("id", "")
    found = dlq.walk(request.app.state.rt, dlq.Filter(ident=ident)) if ident else None
    if found is None or not found.items:
        raise HTTPException(404, f"no dead letter {ident!r} (it may have been replayed or purged); see the queues page")
    return page(request, "dead_letter.html", letters=[d.to_dict(full=True) for d in found.items], ident=ident)


async def dead_letter_action(request: Request) -> Response:
    form = await request.form()
    ident = str(form.get("id") or "")
    verb = request.url.path.rsplit("/", 1)[1]
    user = check_action(request, form, f"dlq.{verb}", f"dead_letter:{ident}")
    if not ident:
        raise HTTPException(400, "which dead letter? (its message id)")
    rt = request.app.state.rt
    result = await run_in_threadpool(dlq.walk, rt, dlq.Filter(ident=ident), action=verb)
    detail = result.to_dict()
    outcome = "ok" if not result.errors and result.matched else "failed"
    await run_in_threadpool(audit, rt.db, user, f"dlq.{verb}", f"dead_letter:{ident}", outcome=outcome, detail=detail)
    if not result.matched:
        flash(request, f"no dead letter {ident}: already replayed or purged?", "error")
    elif result.errors:
        flash(request, f"{verb} of {ident}: " + "; ".join(result.errors), "error")
    else:
        done = result.replayed if verb == "replay" else result.purged
        flash(request, f"{'replayed' if verb == 'replay' else 'purged'} {done} dead letter(s) ({ident})")
    return RedirectResponse("/queues", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/queues", queues_page, methods=["GET"]),
        Route("/queues/pause", queue_pause, methods=["POST"]),
        Route("/queues/resume", queue_pause, methods=["POST"]),
        Route("/queues/nodes/confirm", node_confirm, methods=["GET"]),
        Route("/queues/nodes/drain", node_action, methods=["POST"]),
        Route("/queues/nodes/undrain", node_action, methods=["POST"]),
        Route("/queues/dead-letter", dead_letter, methods=["GET"]),
        Route("/queues/dead-letter/replay", dead_letter_action, methods=["POST"]),
        Route("/queues/dead-letter/purge", dead_letter_action, methods=["POST"]),
    ]
