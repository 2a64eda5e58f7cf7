"""``ops rebalance`` and the periodic ``ops.auto_rebalance``: measure, plan (pure), move."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from eventpipe.queues.management import ManagementError

from .moves import Progress, execute_plan, loads
from .nodes import nodes_for
from .plan import plan
from eventpipe.metadata.flags import load_drained_nodes

MOVE_PREFIX = "eventpipe-move-"


def moves_running(rt: Any) -> list[str]:
    """Names of eventpipe shovels still running on any node (a previous move not finished)."""
    running: list[str] = []
    for node in nodes_for(rt.settings):
        try:
            with node.client(timeout=5.0) as mc:
                running += [s.get("name", "") for s in mc.shovels(node.vhost) if str(s.get("name", "")).startswith(MOVE_PREFIX)]
        except ManagementError:
            continue
    return running


def rebalance(rt: Any, *, dry_run: bool = False, factor: float = 2.0, min_move: int = 100,
              on_progress: Progress | None = None, on_plan: Any = None) -> dict[str, Any]:
    """Plan from exact backlogs and consumer counts, then execute (unless ``dry_run``)."""
    nodes = nodes_for(rt.settings)
    measured, errors = loads(nodes, rt.topology, rt.registry.queues())
    excluded = load_drained_nodes(rt.db)
    moves = plan(measured, factor=factor, min_move=min_move, excluded=excluded)
    if on_plan is not None:
        on_plan(moves)
    results = [] if dry_run else execute_plan(nodes, moves, rt.topology, on_progress=on_progress)
    return {
        "dry_run": dry_run,
        "loads": [asdict(x) for x in measured],
        "plan": [m.to_dict() for m in moves],
        "results": [asdict(r) for r in results],
        "moved": sum(r.moved for r in results),
        "errors": errors + [f"{r.src}->{r.dst} {r.queue}: {r.error}" for r in results if r.error],
    }
