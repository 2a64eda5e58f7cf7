"""What every ``eventpipe`` command shares: opening the runtime, JSON and table output, the
consoles, exit codes, and the one place where errors become messages.

A command raises an :class:`~eventpipe.errors.EventpipeError` (its own, or one from the package it
calls) and :class:`EventpipeGroup` turns it into ``error: …`` plus ``next: …`` on stderr, a JSON
``{"error": {…}}`` object on stdout when the command was given ``--json``, and the error's exit code.
Commands therefore hold no ``try``/``except`` of their own for reporting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eventpipe.errors import EventpipeError
from eventpipe.runtime import open_runtime

if TYPE_CHECKING:
    from eventpipe.runtime import Runtime

# piped output gets wide lines: a table cut at 80 columns breaks every `grep` of it
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    """The exit codes of every command."""

    OK = 0
    FAILED = 1  # the command ran and found problems (missing bodies, a link down, an error)
    USAGE = 2  # bad flags or configuration: fix the command line or the settings
    UNAVAILABLE = 3  # a server or store could not be reached: retry once it is back
    # `ops status --check`
    BEHIND = 1  # a queue is behind its lag or backlog threshold
    UNREADABLE = 2  # a node's queues could not be read: its backlog is unknown


class CommandFailed(EventpipeError):
    """A command could not do what was asked; the message says why and what to do next."""


class ServiceUnavailable(EventpipeError):
    """The database, store or broker the settings name could not be reached."""

    retryable: ClassVar[bool] = True
    exit_code: ClassVar[int] = ExitCode.UNAVAILABLE
    hint: ClassVar[str] = ("check the EVENTPIPE_* settings (database, broker, redis, kv) and that the services "
                           "are reachable, then run the command again")


# ---- output -----------------------------------------------------------------------------------
def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``; naive datetimes are taken as UTC (as the database stores them)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return iso(obj)
    return str(obj)


def emit_json(data: Any, *, line: bool = False) -> None:
    """Print ``data`` as JSON on stdout: indented, or one line per call with ``line=True`` (streams)."""
    if line:
        click.echo(json.dumps(data, sort_keys=True, default=_default, separators=(",", ":")))
    else:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=_default))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          compact: bool = False) -> Table:
    """A rich table; ``None`` cells show as ``-``."""
    t = Table(*headers, title=title, box=None if compact else box.HEAVY_HEAD, pad_edge=not compact,
              header_style="bold")
    for row in rows:
        t.add_row(*["-" if v is None else str(v) for v in row])
    return t


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta["eventpipe.json"] = True
    return value


def json_option(fn: F, *, help: str = "print JSON for scripts") -> F:  # noqa: A002 - click's name
    """``--json``: machine-readable output on stdout; errors become a JSON object too."""
    return click.option("--json", "as_json", is_flag=True, help=help, callback=_remember_json)(fn)


def confirm_or_abort(question: str, *, yes: bool, as_json: bool) -> None:
    """Ask unless ``--yes``; ``--json`` without ``--yes`` is a usage error (no prompt in machine mode)."""
    if yes:
        return
    if as_json:
        raise click.UsageError("--json needs --yes (no prompt in machine mode)")
    click.confirm(question, abort=True)


# ---- runtime ----------------------------------------------------------------------------------
def open_rt() -> Runtime:
    """The process's runtime; a failure to reach a service is reported with what to check."""
    try:
        return open_runtime()
    except EventpipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - driver errors: report them, the traceback helps nobody
        raise ServiceUnavailable(f"cannot open the eventpipe runtime: {type(exc).__name__}: {exc}") from None


# ---- errors -----------------------------------------------------------------------------------
def error_object(exc: EventpipeError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc), "next": exc.hint or None,
            "exit_code": int(exc.exit_code), "retryable": exc.retryable}


def report_error(ctx: click.Context, exc: EventpipeError) -> None:
    """Print the error (and the JSON object under ``--json``), then exit with its code."""
    err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
    if exc.hint:
        err.print(f"next: {exc.hint}", soft_wrap=True, markup=False, highlight=False)
    if ctx.meta.get("eventpipe.json"):
        emit_json({"error": error_object(exc)})
    ctx.exit(int(exc.exit_code))


class EventpipeGroup(click.Group):
    """A click group that reports every :class:`EventpipeError` one way (see the module docstring)."""

    group_class = type  # subgroups made with `@grp.group()` are EventpipeGroups too

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EventpipeError as exc:
            report_error(ctx, exc)


class EventpipeCommand(click.Command):
    """A top-level command (no group) with the same error reporting."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EventpipeError as exc:
            report_error(ctx, exc)


def group(name: str | None = None, **kw: Any) -> Callable[[Callable[..., Any]], EventpipeGroup]:
    """``@click.group`` with :class:`EventpipeGroup`; subgroups made with ``.group()`` inherit it."""
    return click.group(name, cls=EventpipeGroup, **kw)


def command(name: str | None = None, **kw: Any) -> Callable[[Callable[..., Any]], EventpipeCommand]:
    return click.command(name, cls=EventpipeCommand, **kw)

