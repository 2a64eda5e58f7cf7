"""``eventpipe ops``: see, drain, rebalance, pause and purge backlogs across every node.

Every command that changes something asks for confirmation unless ``--yes``; every command has
``--json`` where a machine reads the result. The work is done by plain functions in
:mod:`eventpipe.ops`; credentials never appear in output. The ``killswitch`` and ``dlq`` subgroups
live in their own modules and are attached in :mod:`eventpipe.cli`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

import click
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from eventpipe.ops.moves import check_queue, drain_node_now, drain_queue_now, purge_queue
from eventpipe.ops.nodes import find_node, nodes_for
from eventpipe.metadata.flags import clear_drained, open_queue, pause_queue, resume_queue
from eventpipe.metadata.flags import paused as paused_rows
from eventpipe.ops.status import Report, collect

from ._common import ExitCode, confirm_or_abort, emit_json, err, group, json_option, open_rt, out


@group()
def ops() -> None:
    """Operator tooling: status, drain, rebalance, pause, purge, kill switches, dead letters, metrics."""


# status ------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _render(report: Report) -> Group:
    parts: list[Any] = []
    t = Table(title=f"queues (behind: lag > {report.lag_threshold_seconds:g}s or ready > {report.backlog_threshold})")
    for col in ("queue", "node", "", "ready", "unacked", "cons", "lag s", "pub/s", "deliv/s", "ack/s"):
        t.add_column(col, justify="left" if col in ("queue", "node", "") else "right")
    notes: list[str] = []
    for r in report.queues:
        flag = "BEHIND" if r.behind else ("error" if r.error and r.ready is None else "ok")
        if r.behind:
            notes.append(f"{r.queue} on {r.node}: " + ", ".join(r.why))
        t.add_row(r.queue, r.node, flag, _fmt(r.ready), _fmt(r.unacked), _fmt(r.consumers), _fmt(r.lag_seconds, 1),
                  _fmt(r.publish_rate, 1), _fmt(r.deliver_rate, 1), _fmt(r.ack_rate, 1),
                  style="bold red" if r.behind else None)
    for tot in report.totals:
        t.add_row(tot["queue"], f"total/{tot['nodes']}", "BEHIND" if tot["behind"] else "ok", _fmt(tot["ready"]),
                  _fmt(tot["unacked"]), _fmt(tot["consumers"]), _fmt(tot["lag_seconds"], 1), "", "", "",
                  style="bold red" if tot["behind"] else "bold")
    parts.append(t)
    w = Table(title=f"workers alive ({len(report.workers)})")
    for col in ("worker", "host", "pid", "pool", "queues", "state", "tasks", "last seen"):
        w.add_column(col)
    for x in report.workers:
        w.add_row(x["worker_id"], x["hostname"], str(x["pid"]), x["pool"], ",".join(x["queues"]), x["state"],
                  str(x["tasks_done"]), x["last_seen"])
    parts.append(w)
    if report.links:
        lt = Table(title="federation links")
        for col in ("node", "queue", "upstream", "status", "error"):
            lt.add_column(col)
        for link in report.links:
            lt.add_row(link["node"], link["queue"], link["upstream"], link["status"], link["error"] or "",
                       style=None if link["status"] == "running" else "red")
        parts.append(lt)
    for note in notes:
        parts.append(Text(f"BEHIND {note}", style="red"))
    for e in report.errors:
        parts.append(Text(f"! {e}", style="yellow"))
    return Group(*parts)


@ops.command()
@json_option
@click.option("--watch", is_flag=True, help="refresh until Ctrl-C")
@click.option("--interval", default=2.0, show_default=True, help="seconds between refreshes with --watch")
@click.option("--check", is_flag=True, help="exit 1 when a queue is behind (lag or backlog over the thresholds), 2 when a node's queues cannot be read")
def status(as_json: bool, watch: bool, interval: float, check: bool) -> None:
    """Backlog, consumers, rates and lag per queue per node; workers alive; federation links."""
    rt = open_rt()
    try:
        if watch and not as_json and out.is_terminal:  # live table; piped output gets one table per refresh
            from rich.live import Live

            with Live(_render(collect(rt)), console=out, refresh_per_second=4, screen=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(_render(collect(rt)))
        while True:
            report = collect(rt)
            if as_json:
                emit_json(report.to_json())
            else:
                out.print(_render(report))
            if not watch:
                break
            sys.stdout.flush()  # piped to a file or `tee`: show each refresh as it comes
            time.sleep(interval)
    except KeyboardInterrupt:
        return
    if check:
        if report.behind:
            sys.exit(ExitCode.BEHIND)
        if any(r.error and r.ready is None for r in report.queues):
            sys.exit(ExitCode.UNREADABLE)  # a node could not be read: its backlog is unknown


# drain / undrain -------------------------------------------------------------------------------
@ops.command()
@click.option("--node", help="HOST:PORT of the node to empty: publishers stop using it, its backlog moves away")
@click.option("--queue", "queue", help="logical queue to close to new work and wait until empty")
@click.option("--chunk", default=5000, show_default=True, help="messages per shovel")
@click.option("--timeout", default=3600.0, show_default=True, help="give up after this many seconds")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@json_option
def drain(node: str | None, queue: str | None, chunk: int, timeout: float, yes: bool, as_json: bool) -> None:
    """Empty a node (--node) or a queue (--queue)."""
    if bool(node) == bool(queue):
        raise click.UsageError("give exactly one of --node HOST:PORT or --queue NAME")
    rt = open_rt()
    if node:
        _drain_node(rt, node, chunk, timeout, yes, as_json)
    else:
        assert queue is not None
        _drain_queue(rt, queue, timeout, yes, as_json)


def _drain_node(rt: Any, name: str, chunk: int, timeout: float, yes: bool, as_json: bool) -> None:
    find_node(nodes_for(rt.settings), name)  # a typo fails before the question
    if not yes and not as_json:
        click.confirm(f"Stop publishing to {name} and move its whole backlog to the other nodes?", abort=True)
    if as_json:
        result = drain_node_now(rt, name, chunk=chunk, timeout_s=timeout)
    else:
        with Progress(TextColumn("draining " + name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err) as bar:
            task = bar.add_task("drain", total=None)

            def progress(moved: int, remaining: int) -> None:
                bar.update(task, completed=moved, total=moved + remaining)

            result = drain_node_now(rt, name, chunk=chunk, timeout_s=timeout, on_progress=progress)
    if as_json:
        emit_json({"node": name, "drained": True, "moved": result.moved, "passes": result.passes,
                   "elapsed_s": round(result.elapsed_s, 2), "left": result.left,
                   "moves": [asdict(m) for m in result.moves]})
        return
    out.print(f"[green]{name} drained[/green]: moved {result.moved} message(s) in {result.elapsed_s:.1f}s; "
              f"publishers skip it until `eventpipe ops undrain --node {name}`")
    if result.left:
        out.print(f"[yellow]still there (arrived during the last pass): {result.left}[/yellow]")


def _drain_queue(rt: Any, queue: str, timeout: float, yes: bool, as_json: bool) -> None:
    check_queue(rt, queue)
    if not yes and not as_json:
        click.confirm(f"Refuse new work for {queue} and wait until it is empty?", abort=True)
    if as_json:
        waited = drain_queue_now(rt, queue, timeout_s=timeout)
    else:
        with err.status(f"waiting for {queue} to empty") as st:
            waited = drain_queue_now(rt, queue, timeout_s=timeout,
                                     on_progress=lambda n: st.update(f"{queue}: {n} message(s) left"))
    if as_json:
        emit_json({"queue": queue, "closed": True, "empty": True, "waited_s": round(waited, 1)})
    else:
        out.print(f"[green]{queue} is empty[/green] and closed to new work; reopen with `eventpipe ops undrain --queue {queue}`")


@ops.command()
@click.option("--node", help="HOST:PORT to publish to again")
@click.option("--queue", "queue", help="logical queue to accept new work again")
@json_option
def undrain(node: str | None, queue: str | None, as_json: bool) -> None:
    """Undo `ops drain`: publishers use the node again / the queue accepts new work."""
    if bool(node) == bool(queue):
        raise click.UsageError("give exactly one of --node HOST:PORT or --queue NAME")
    rt = open_rt()
    changed = clear_drained(rt.db, node) if node else open_queue(rt.db, queue or "")
    if as_json:
        emit_json({"node": node, "queue": queue, "changed": changed})
    else:
        out.print(f"{node or queue}: " + ("undrained" if changed else "was not drained"))


# rebalance -------------------------------------------------------------------------------------
@ops.command()
@click.option("--dry-run", is_flag=True, help="print the plan, move nothing")
@click.option("--factor", default=2.0, show_default=True, help="move from nodes above FACTOR x the mean backlog per consumer")
@click.option("--min-move", default=100, show_default=True, help="smallest move worth a shovel")
@json_option
def rebalance(dry_run: bool, factor: float, min_move: int, as_json: bool) -> None:
    """Move surplus backlog to nodes with consumers and spare capacity (dynamic shovels)."""
    from eventpipe.ops.rebalance import rebalance as run

    rt = open_rt()
    nodes_for(rt.settings)  # no nodes (embedded mode): say so before planning

    def show_plan(moves: list[Any]) -> None:
        if as_json:
            return
        t = Table(title="rebalance plan" + (" (dry run)" if dry_run else ""))
        for col in ("queue", "from", "to", "messages", "why"):
            t.add_column(col)
        for m in moves:
            t.add_row(m.queue, m.src, m.dst, str(m.count), m.why)
        out.print(t if moves else "nothing to move: backlogs are within the factor of the mean")

    if as_json or dry_run:
        result = run(rt, dry_run=dry_run, factor=factor, min_move=min_move, on_plan=show_plan)
    else:  # progress while the shovels move (each fails within seconds when it cannot run)
        with Progress(TextColumn("rebalancing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err) as bar:
            task = bar.add_task("rebalance", total=None)

            def planned(moves: list[Any]) -> None:
                show_plan(moves)
                bar.update(task, total=sum(m.count for m in moves) or None)

            result = run(rt, factor=factor, min_move=min_move, on_plan=planned,
                         on_progress=lambda n: bar.advance(task, n))
    if as_json:
        emit_json(result)
    elif not dry_run and result["plan"]:
        out.print(f"moved {result['moved']} message(s)")
    for e in result["errors"]:
        err.print(f"[yellow]! {e}[/yellow]")


# pause / resume / purge --------------------------------------------------------------------------
@ops.command()
@click.argument("queue")
@click.option("--reason", default="", help="shown in `ops paused`")
@json_option
def pause(queue: str, reason: str, as_json: bool) -> None:
    """Stop every worker consuming QUEUE within seconds (persisted until `ops resume`)."""
    rt = open_rt()
    check_queue(rt, queue)
    new = pause_queue(rt.db, queue, reason)
    if as_json:
        emit_json({"queue": queue, "paused": True, "changed": new})
    else:
        out.print(f"{queue} " + ("paused: workers stop taking its messages within ~1 s" if new else "was already paused"))


@ops.command()
@click.argument("queue")
@json_option
def resume(queue: str, as_json: bool) -> None:
    """Let workers consume QUEUE again."""
    changed = resume_queue(open_rt().db, queue)
    if as_json:
        emit_json({"queue": queue, "paused": False, "changed": changed})
    else:
        out.print(f"{queue} " + ("resumed" if changed else "was not paused"))


@ops.command()
@json_option
def paused(as_json: bool) -> None:
    """Queues paused now."""
    data = paused_rows(open_rt().db)
    if as_json:
        emit_json(data)
        return
    for r in data:
        out.print(f"{r['queue']}  since {r['paused_at']}  {r['reason']}")
    if not data:
        out.print("no queue is paused")


@ops.command()
@click.argument("queue")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@json_option
def purge(queue: str, yes: bool, as_json: bool) -> None:
    """Delete every ready message of QUEUE on every node (not its dead letters); exit 1 if a node failed."""
    rt = open_rt()
    check_queue(rt, queue)
    confirm_or_abort(f"Delete every ready message of {queue} on every node? This cannot be undone",
                     yes=yes, as_json=as_json)
    result = purge_queue(rt, queue)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"purged {result.purged} message(s) from {queue}: {result.per_node}")
        for e in result.errors:
            err.print(f"[yellow]! {e}[/yellow]")
    if result.errors:
        sys.exit(ExitCode.FAILED)


# exporter --------------------------------------------------------------------------------------
@ops.command()
@click.option("--port", default=9108, show_default=True)
@click.option("--addr", default="0.0.0.0", show_default=True)
def exporter(port: int, addr: str) -> None:
    """Serve per-queue per-node backlog and lag gauges (and workers' metrics in multiprocess mode)."""
    from prometheus_client import start_http_server

    from eventpipe.ops.metrics import exporter_registry

    rt = open_rt()
    start_http_server(port, addr=addr, registry=exporter_registry(rt))
    err.print(f"serving eventpipe metrics on http://{addr}:{port}/metrics")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


__all__ = ["ops"]
