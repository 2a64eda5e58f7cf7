"""``eventpipe ops dlq``: dead letters on every node (or in SQL, embedded mode): list, show, replay, purge."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from eventpipe.ops.dlq import Filter, Outcome, parse_since, walk

from ._common import CommandFailed, ExitCode, confirm_or_abort, emit_json, err, group, json_option, open_rt, out, table


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--queue", "queue", help="logical queue (or pattern)"),
        click.option("--task", "task", help="task name (or pattern)"),
        click.option("--since", help="failed since: 30m, 2h, 1d or an ISO time"),
        json_option,
    ]):
        fn = opt(fn)
    return fn


def _walk(action: str, queue: str | None, task: str | None, since: str | None, ident: str | None) -> Outcome:
    flt = Filter(queue=queue, task=task, since=parse_since(since), ident=ident)
    return walk(open_rt(), flt, action=action)


def _print_errors(result: Outcome) -> None:
    for e in result.errors:
        err.print(f"[yellow]! {e}[/yellow]")


@group()
def dlq() -> None:
    """Dead letters on every node (or in SQL, embedded mode): list, show, replay, purge."""


@dlq.command("list")
@_filters
def list_(queue: str | None, task: str | None, since: str | None, as_json: bool) -> None:
    """Dead letters with their reasons."""
    result = _walk("list", queue, task, since, None)
    if as_json:
        emit_json(result.to_dict(items=True))
        return
    out.print(table(
        ["#", "node", "queue", "task", "message id", "attempts", "failed at", "reason"],
        [[d.index, d.node, d.queue, d.task, d.message_id, d.attempts, d.to_dict()["failed_at"] or "-", d.reason[:100]]
         for d in result.items],
        title=f"dead letters ({result.matched})",
    ))
    _print_errors(result)


@dlq.command("show")
@click.argument("ident")
@_filters
def show(ident: str, queue: str | None, task: str | None, since: str | None, as_json: bool) -> None:
    """One dead letter (message id, or # from `dlq list`) with traceback and kwargs."""
    result = _walk("list", queue, task, since, ident)
    if not result.items:
        raise CommandFailed(f"no dead letter {ident!r} (ids and # come from `eventpipe ops dlq list`)")
    if as_json:
        emit_json([d.to_dict(full=True) for d in result.items])
        return
    for d in result.items:
        row = d.to_dict(full=True)
        out.print(f"[bold]#{d.index}[/bold] {d.task} on {d.node} queue {d.queue} id {d.message_id}")
        out.print(f"attempts {d.attempts}, failed at {row['failed_at']}, failures {row['failure_times']}")
        out.print(f"reason: {d.reason}", markup=False)
        out.print(f"kwargs: {json.dumps(d.kwargs, default=str)}", markup=False)
        out.print(d.traceback or "(no traceback)", markup=False, highlight=False)


@dlq.command("replay")
@click.argument("ident", required=False)
@_filters
@click.option("--yes", is_flag=True)
def replay(ident: str | None, queue: str | None, task: str | None, since: str | None, as_json: bool, yes: bool) -> None:
    """Move matching dead letters back to their work queue (confirmed, then removed from the DLQ)."""
    if not (yes or as_json or ident):
        click.confirm("Replay every matching dead letter?", abort=True)
    result = _walk("replay", queue, task, since, ident)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"replayed {result.replayed} of {result.matched} matching dead letter(s); {result.kept} kept")
        _print_errors(result)
    if result.errors:
        sys.exit(ExitCode.FAILED)


@dlq.command("purge")
@click.argument("ident", required=False)
@_filters
@click.option("--yes", is_flag=True)
def purge(ident: str | None, queue: str | None, task: str | None, since: str | None, as_json: bool, yes: bool) -> None:
    """Delete matching dead letters."""
    confirm_or_abort("Delete every matching dead letter? This cannot be undone", yes=yes, as_json=as_json)
    result = _walk("purge", queue, task, since, ident)
    if as_json:
        emit_json(result.to_dict())
    else:
        out.print(f"purged {result.purged} dead letter(s)")


__all__ = ["dlq"]
