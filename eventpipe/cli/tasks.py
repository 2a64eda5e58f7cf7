"""``eventpipe tasks``: the declared tasks."""

from __future__ import annotations

from eventpipe.config import get_settings
from eventpipe.queues.topology import Topology
from eventpipe.tasks.api import load_catalogue

from ._common import emit_json, group, json_option, out, table


@group()
def tasks() -> None:
    """Declared tasks."""


@tasks.command("list")
@json_option
def tasks_list(as_json: bool) -> None:
    """List every declared task with its queue."""
    settings = get_settings()
    topo = Topology(settings.queue_prefix)
    rows = [{**spec.as_row(), "physical_queue": topo.queue(spec.queue)}
            for spec in load_catalogue(settings.task_modules).all()]
    if as_json:
        emit_json(rows)
        return
    out.print(table(
        ["task", "queue", "retries", "time limit", "doc"],
        [[r["name"], r["physical_queue"], r["max_retries"] if r["max_retries"] is not None else "default",
          f"{r['time_limit_ms'] // 1000}s", r["doc"]] for r in rows],
    ))


__all__ = ["tasks"]
