"""``eventpipe ops``: see, drain, rebalance, pause and repair backlogs across every node.

Attached to the main CLI as ``eventpipe ops`` (``eventpipe.cli`` imports ``ops`` from here). Every
command that changes something asks for confirmation unless ``--yes``; every command has
``--json`` where a machine reads the result. Failures are :class:`click.ClickException` messages
naming the node and the next step; credentials never appear in output.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
import pika
from rich.console import Console
from rich.table import Table

from eventpipe.config import ConfigError
from eventpipe.queues.management import ManagementError

from .nodes import OpsError

out = Console()
err = Console(stderr=True)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _rt() -> Any:
    from eventpipe.runtime import open_runtime

    try:
        return open_runtime()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _nodes(rt: Any) -> list[Any]:
    from .nodes import nodes_for

    try:
        return nodes_for(rt.settings)
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None


def _check_queue(rt: Any, queue: str) -> None:
    known = rt.registry.queues()
    if queue not in known:
        raise click.ClickException(f"no queue {queue!r}; declared queues: {', '.join(known)}")


@click.group()
def ops() -> None:
    """Operator tooling: status, drain, rebalance, pause, purge, kill switches, dead letters, metrics."""


# status ------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _render(report: Any) -> Any:
    from rich.console import Group
    from rich.text import Text

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
@click.option("--json", "as_json", is_flag=True, help="print {queues, workers, links} as JSON")
@click.option("--watch", is_flag=True, help="refresh until Ctrl-C")
@click.option("--interval", default=2.0, show_default=True, help="seconds between refreshes with --watch")
@click.option("--check", is_flag=True, help="exit 1 when a queue is behind (lag or backlog over the thresholds), 2 when a node's queues cannot be read")
def status(as_json: bool, watch: bool, interval: float, check: bool) -> None:
    """Backlog, consumers, rates and lag per queue per node; workers alive; federation links."""
    from .status import collect

    rt = _rt()
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
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        return
    if check:
        if report.behind:
            sys.exit(1)
        if any(r.error and r.ready is None for r in report.queues):
            sys.exit(2)  # a node could not be read: its backlog is unknown


# drain / undrain -------------------------------------------------------------------------------
@ops.command()
@click.option("--node", help="HOST:PORT of the node to empty: publishers stop using it, its backlog moves away")
@click.option("--queue", "queue", help="logical queue to close to new work and wait until empty")
@click.option("--chunk", default=5000, show_default=True, help="messages per shovel")
@click.option("--timeout", default=3600.0, show_default=True, help="give up after this many seconds")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--json", "as_json", is_flag=True)
def drain(node: str | None, queue: str | None, chunk: int, timeout: float, yes: bool, as_json: bool) -> None:
    """Empty a node (--node) or a queue (--queue)."""
    if bool(node) == bool(queue):
        raise click.UsageError("give exactly one of --node HOST:PORT or --queue NAME")
    rt = _rt()
    if node:
        _drain_node(rt, node, chunk, timeout, yes, as_json)
    else:
        assert queue is not None
        _drain_queue(rt, queue, timeout, yes, as_json)


def _drain_node(rt: Any, name: str, chunk: int, timeout: float, yes: bool, as_json: bool) -> None:
    from dataclasses import asdict

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from .moves import drain_node
    from .nodes import find_node
    from .state import CACHE_S, load_drained_nodes, mark_drained

    nodes = _nodes(rt)
    try:
        name = find_node(nodes, name).host_port  # the canonical HOST:PORT publishers compare with
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None
    if not yes and not as_json:
        click.confirm(f"Stop publishing to {name} and move its whole backlog to the other nodes?", abort=True)
    mark_drained(rt.db, name, reason="eventpipe ops drain")
    time.sleep(CACHE_S + 0.5)  # every publisher's cached flag has expired: no new work lands there
    excluded = load_drained_nodes(rt.db) - {name}
    try:
        if as_json:
            result = drain_node(nodes, name, rt.topology, rt.registry.queues(), excluded=excluded, chunk=chunk, timeout_s=timeout)
        else:
            with Progress(TextColumn("draining " + name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err) as bar:
                task = bar.add_task("drain", total=None)

                def progress(moved: int, remaining: int) -> None:
                    bar.update(task, completed=moved, total=moved + remaining)

                result = drain_node(nodes, name, rt.topology, rt.registry.queues(), excluded=excluded, chunk=chunk,
                                    on_progress=progress, timeout_s=timeout)
    except (OpsError, ManagementError, pika.exceptions.AMQPError, OSError) as exc:
        # e.g. the node is down: the flag is set (publishers avoid it); its messages wait there
        raise click.ClickException(
            f"{type(exc).__name__}: {exc} (the node stays drained; rerun to continue moving its backlog, "
            f"or `eventpipe ops undrain --node {name}`)"
        ) from None
    data = {"node": name, "drained": True, "moved": result.moved, "passes": result.passes,
            "elapsed_s": round(result.elapsed_s, 2), "left": result.left,
            "moves": [asdict(m) for m in result.moves]}
    if as_json:
        emit_json(data)
    else:
        out.print(f"[green]{name} drained[/green]: moved {result.moved} message(s) in {result.elapsed_s:.1f}s; "
                  f"publishers skip it until `eventpipe ops undrain --node {name}`")
        if result.left:
            out.print(f"[yellow]still there (arrived during the last pass): {result.left}[/yellow]")


def _drain_queue(rt: Any, queue: str, timeout: float, yes: bool, as_json: bool) -> None:
    from .moves import wait_empty
    from .state import close_queue

    _check_queue(rt, queue)
    if not yes and not as_json:
        click.confirm(f"Refuse new work for {queue} and wait until it is empty?", abort=True)
    close_queue(rt.db, queue, reason="eventpipe ops drain --queue")
    physical = rt.topology.queue(queue)
    t0 = time.monotonic()
    if rt.settings.embedded:
        # the embedded broker's queues live in this process: run them dry here
        rt.broker.run_until_idle()
        waited = time.monotonic() - t0
    else:
        nodes = _nodes(rt)
        try:
            if as_json:
                waited = wait_empty(nodes, physical, timeout_s=timeout)
            else:
                with err.status(f"waiting for {queue} to empty") as st:
                    waited = wait_empty(nodes, physical, timeout_s=timeout,
                                        on_progress=lambda n: st.update(f"{queue}: {n} message(s) left"))
        except OpsError as exc:
            raise click.ClickException(f"{exc} (the queue stays closed; `eventpipe ops undrain --queue {queue}` reopens it)") from None
    data = {"queue": queue, "closed": True, "empty": True, "waited_s": round(float(waited), 1)}
    if as_json:
        emit_json(data)
    else:
        out.print(f"[green]{queue} is empty[/green] and closed to new work; reopen with `eventpipe ops undrain --queue {queue}`")


@ops.command()
@click.option("--node", help="HOST:PORT to publish to again")
@click.option("--queue", "queue", help="logical queue to accept new work again")
@click.option("--json", "as_json", is_flag=True)
def undrain(node: str | None, queue: str | None, as_json: bool) -> None:
    """Undo `ops drain`: publishers use the node again / the queue accepts new work."""
    from .state import clear_drained, open_queue

    if bool(node) == bool(queue):
        raise click.UsageError("give exactly one of --node HOST:PORT or --queue NAME")
    rt = _rt()
    changed = clear_drained(rt.db, node) if node else open_queue(rt.db, queue or "")
    data = {"node": node, "queue": queue, "changed": changed}
    if as_json:
        emit_json(data)
    else:
        out.print(f"{node or queue}: " + ("undrained" if changed else "was not drained"))


# rebalance -------------------------------------------------------------------------------------
@ops.command()
@click.option("--dry-run", is_flag=True, help="print the plan, move nothing")
@click.option("--factor", default=2.0, show_default=True, help="move from nodes above FACTOR x the mean backlog per consumer")
@click.option("--min-move", default=100, show_default=True, help="smallest move worth a shovel")
@click.option("--json", "as_json", is_flag=True)
def rebalance(dry_run: bool, factor: float, min_move: int, as_json: bool) -> None:
    """Move surplus backlog to nodes with consumers and spare capacity (dynamic shovels)."""
    from .rebalance import rebalance as run

    rt = _rt()
    _nodes(rt)

    def show_plan(moves: list[Any]) -> None:
        if as_json:
            return
        t = Table(title="rebalance plan" + (" (dry run)" if dry_run else ""))
        for col in ("queue", "from", "to", "messages", "why"):
            t.add_column(col)
        for m in moves:
            t.add_row(m.queue, m.src, m.dst, str(m.count), m.why)
        out.print(t if moves else "nothing to move: backlogs are within the factor of the mean")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        if as_json or dry_run:
            result = run(rt, dry_run=dry_run, factor=factor, min_move=min_move, on_plan=show_plan)
        else:
            with Progress(TextColumn("rebalancing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err) as bar:
                task = bar.add_task("rebalance", total=None)

                def planned(moves: list[Any]) -> None:
                    show_plan(moves)
                    bar.update(task, total=sum(m.count for m in moves) or None)

                result = run(rt, factor=factor, min_move=min_move, on_plan=planned,
                             on_progress=lambda n: bar.advance(task, n))
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None
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
def pause(queue: str, reason: str) -> None:
    """Stop every worker consuming QUEUE within seconds (persisted until `ops resume`)."""
    from .state import pause_queue

    rt = _rt()
    _check_queue(rt, queue)
    new = pause_queue(rt.db, queue, reason)
    out.print(f"{queue} " + ("paused: workers stop taking its messages within ~1 s" if new else "was already paused"))


@ops.command()
@click.argument("queue")
def resume(queue: str) -> None:
    """Let workers consume QUEUE again."""
    from .state import resume_queue

    rt = _rt()
    out.print(f"{queue} " + ("resumed" if resume_queue(rt.db, queue) else "was not paused"))


@ops.command()
@click.option("--json", "as_json", is_flag=True)
def paused(as_json: bool) -> None:
    """Queues paused now."""
    from .state import paused as rows

    data = rows(_rt().db)
    if as_json:
        emit_json(data)
    else:
        for r in data:
            out.print(f"{r['queue']}  since {r['paused_at']}  {r['reason']}")
        if not data:
            out.print("no queue is paused")


@ops.command()
@click.argument("queue")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--json", "as_json", is_flag=True)
def purge(queue: str, yes: bool, as_json: bool) -> None:
    """Delete every ready message of QUEUE on every node (not its dead letters)."""
    from eventpipe.queues.nodes import connect

    rt = _rt()
    _check_queue(rt, queue)
    physical = rt.topology.queue(queue)
    if not (yes or as_json):
        click.confirm(f"Delete every ready message of {queue} on every node? This cannot be undone", abort=True)
    elif as_json and not yes:
        raise click.UsageError("--json needs --yes (no prompt in machine mode)")
    per_node: dict[str, int | None] = {}
    errors: list[str] = []
    if rt.settings.embedded:
        # the embedded broker's queues live in this process (normally empty for a CLI process)
        q = rt.broker.queues.get(physical)
        per_node["embedded"] = q.qsize() if q is not None else 0
        if q is not None:
            rt.broker.flush(physical)
    else:
        for node in _nodes(rt):
            try:
                conn = connect(node.amqp_url)
                try:
                    ch = conn.channel()
                    per_node[node.host_port] = int(ch.queue_purge(physical).method.message_count)
                except Exception as exc:  # noqa: BLE001 - missing queue: nothing there
                    per_node[node.host_port] = 0 if "NOT_FOUND" in str(exc) else None
                    if per_node[node.host_port] is None:
                        errors.append(f"{node.host_port}: {exc}")
                finally:
                    if conn.is_open:
                        conn.close()
            except Exception as exc:  # noqa: BLE001
                per_node[node.host_port] = None
                errors.append(f"{node.host_port}: unreachable ({type(exc).__name__})")
    total = sum(v for v in per_node.values() if v)
    data = {"queue": queue, "purged": total, "per_node": per_node, "errors": errors}
    if as_json:
        emit_json(data)
    else:
        out.print(f"purged {total} message(s) from {queue}: {per_node}")
        for e in errors:
            err.print(f"[yellow]! {e}[/yellow]")
    if errors:
        sys.exit(1)


# kill switches ---------------------------------------------------------------------------------
@ops.group()
def killswitch() -> None:
    """Drop messages of a task (pattern) with given kwargs, in every worker, until removed."""


@killswitch.command("add")
@click.argument("task")
@click.option("--where", "where", multiple=True, help="key=value the message kwargs must equal (repeatable)")
@click.option("--reason", default="")
@click.option("--json", "as_json", is_flag=True)
def killswitch_add(task: str, where: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Add a rule: TASK is a name or pattern (events.*)."""
    from .killswitch import add_rule, parse_where

    try:
        cond = parse_where(where)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    rid = add_rule(_rt().db, task, cond, reason)
    if as_json:
        emit_json({"id": rid, "task": task, "where": cond, "reason": reason})
    else:
        out.print(f"kill switch {rid}: drop {task} where {cond or 'any kwargs'} (workers apply it within ~2 s)")


@killswitch.command("list")
@click.option("--json", "as_json", is_flag=True)
def killswitch_list(as_json: bool) -> None:
    from .killswitch import list_rules

    rules = list_rules(_rt().db)
    if as_json:
        emit_json(rules)
        return
    t = Table(title="kill switches")
    for col in ("id", "task", "where", "dropped", "created", "reason"):
        t.add_column(col)
    for r in rules:
        t.add_row(str(r["id"]), r["task"], json.dumps(r["where"]), str(r["dropped"]), r["created_at"], r["reason"])
    out.print(t)


@killswitch.command("remove")
@click.argument("rule_id", type=int)
def killswitch_remove(rule_id: int) -> None:
    from .killswitch import remove_rule

    if not remove_rule(_rt().db, rule_id):
        raise click.ClickException(f"no kill switch {rule_id}; see `eventpipe ops killswitch list`")
    out.print(f"kill switch {rule_id} removed (workers stop applying it within ~2 s)")


# dead letters ----------------------------------------------------------------------------------
def _dlq_options(fn: Any) -> Any:
    for opt in reversed([
        click.option("--queue", "queue", help="logical queue (or pattern)"),
        click.option("--task", "task", help="task name (or pattern)"),
        click.option("--since", help="failed since: 30m, 2h, 1d or an ISO time"),
        click.option("--json", "as_json", is_flag=True),
    ]):
        fn = opt(fn)
    return fn


@ops.group()
def dlq() -> None:
    """Dead letters on every node (or in SQL, embedded mode): list, show, replay, purge."""


def _dlq_run(action: str, queue: str | None, task: str | None, since: str | None, ident: str | None) -> Any:
    from .dlq import Filter, parse_since, rabbit_walk, sql_walk

    rt = _rt()
    try:
        flt = Filter(queue=queue, task=task, since=parse_since(since), ident=ident)
        if rt.settings.embedded:
            result = sql_walk(rt, flt, action=action)
            if action == "replay" and result.replayed and hasattr(rt.broker, "run_until_idle"):
                rt.broker.run_until_idle()  # embedded: the work runs here, or it would vanish with the process
            return result
        return rabbit_walk(_nodes(rt), rt.topology, rt.registry.queues(), flt, action=action)
    except OpsError as exc:
        raise click.ClickException(str(exc)) from None


@dlq.command("list")
@_dlq_options
def dlq_list(queue: str | None, task: str | None, since: str | None, as_json: bool) -> None:
    """Dead letters with their reasons."""
    result = _dlq_run("list", queue, task, since, None)
    if as_json:
        emit_json(result.to_dict(items=True))
        return
    t = Table(title=f"dead letters ({result.matched})")
    for col in ("#", "node", "queue", "task", "message id", "attempts", "failed at", "reason"):
        t.add_column(col)
    for d in result.items:
        row = d.to_dict()
        t.add_row(str(d.index), d.node, d.queue, d.task, d.message_id, str(d.attempts), row["failed_at"] or "-", d.reason[:100])
    out.print(t)
    for e in result.errors:
        err.print(f"[yellow]! {e}[/yellow]")


@dlq.command("show")
@click.argument("ident")
@_dlq_options
def dlq_show(ident: str, queue: str | None, task: str | None, since: str | None, as_json: bool) -> None:
    """One dead letter (message id, or # from `dlq list`) with traceback and kwargs."""
    result = _dlq_run("list", queue, task, since, ident)
    if not result.items:
        raise click.ClickException(f"no dead letter {ident!r} (ids and # come from `eventpipe ops dlq list`)")
    if as_json:
        emit_json([d.to_dict(full=True) for d in result.items])
        return
    for d in result.items:
        row = d.to_dict(full=True)
        out.print(f"[bold]#{d.index}[/bold] {d.task} on {d.node} queue {d.queue} id {d.message_id}")
        out.print(f"attempts {d.attempts}, failed at {row['failed_at']}, failures {row['failure_times']}")
        out.print(f"reason: {d.reason}")
        out.print(f"kwargs: {json.dumps(d.kwargs, default=str)}")
        out.print(d.traceback or "(no traceback)", markup=False, highlight=False)


@dlq.command("replay")
@click.argument("ident", required=False)
@_dlq_options
@click.option("--yes", is_flag=True)
def dlq_replay(ident: str | None, queue: str | None, task: str | None, since: str | None, as_json: bool, yes: bool) -> None:
    """Move matching dead letters back to their work queue (confirmed, then removed from the DLQ)."""
    if not (yes or as_json or ident):
        click.confirm("Replay every matching dead letter?", abort=True)
    result = _dlq_run("replay", queue, task, since, ident)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"replayed {result.replayed} of {result.matched} matching dead letter(s); {result.kept} kept")
        for e in result.errors:
            err.print(f"[yellow]! {e}[/yellow]")
    if result.errors:
        sys.exit(1)


@dlq.command("purge")
@click.argument("ident", required=False)
@_dlq_options
@click.option("--yes", is_flag=True)
def dlq_purge(ident: str | None, queue: str | None, task: str | None, since: str | None, as_json: bool, yes: bool) -> None:
    """Delete matching dead letters."""
    if not yes:
        if as_json:
            raise click.UsageError("--json needs --yes (no prompt in machine mode)")
        click.confirm("Delete every matching dead letter? This cannot be undone", abort=True)
    result = _dlq_run("purge", queue, task, since, ident)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"purged {result.purged} dead letter(s)")


# exporter --------------------------------------------------------------------------------------
@ops.command()
@click.option("--port", default=9108, show_default=True)
@click.option("--addr", default="0.0.0.0", show_default=True)
def exporter(port: int, addr: str) -> None:
    """Serve per-queue per-node backlog and lag gauges (and workers' metrics in multiprocess mode)."""
    from prometheus_client import start_http_server

    from .metrics import exporter_registry

    rt = _rt()
    start_http_server(port, addr=addr, registry=exporter_registry(rt))
    err.print(f"serving eventpipe metrics on http://{addr}:{port}/metrics")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
