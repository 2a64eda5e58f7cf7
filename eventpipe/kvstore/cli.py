"""``eventpipe kv``: list backends, move bodies between stores, verify a store against the index.

Progress goes to stderr and results to stdout (``--json`` for machines), so the output can be
piped while an operator still sees a progress bar. Exit codes: 0 all good, 1 problems found
(missing or corrupt bodies), 2 usage or configuration error, 3 a store was unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from .base import KVError, KVUnavailable, redact_url

EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def _database(database_url: str | None) -> Any:
    from eventpipe.config import load_settings
    from eventpipe.metadata.db import Database

    url = database_url or load_settings().resolved_database_url()
    db = Database(url)
    db.upgrade()
    return db


@contextmanager
def _progress_bar(label: str, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar on stderr; a no-op when stderr is not a terminal or --json is on."""
    if not enabled:
        yield lambda _p: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[extra]}"), TimeRemainingColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task(label, total=None, extra="")

        def update(p: Any) -> None:
            extra = f"copied {p.copied}" if label == "migrate" else f"ok {p.copied}"
            if p.missing or p.corrupt:
                extra += f", missing {p.missing}, corrupt {p.corrupt}"
            bar.update(task, total=p.total, completed=p.done, extra=extra)

        yield update


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _kv_errors() -> Iterator[None]:
    """Turn store errors into one line that says what to do next, and a distinct exit code."""
    try:
        yield
    except KVUnavailable as exc:
        _fail(f"{exc}\nnext: check the server is up and the URL is right, then run the same command "
              "again (migrate resumes where it stopped)", EXIT_UNAVAILABLE)
    except (KVError, ValueError) as exc:
        _fail(f"{exc}\nnext: fix the URL or options (`eventpipe kv backends` lists the schemes)", EXIT_USAGE)


@click.group()
def kv() -> None:
    """Event-body key-value stores: backends, migration, verification."""


@kv.command("backends")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def kv_backends(as_json: bool) -> None:
    """List URL schemes: built-in backends and plugins installed via entry points."""
    from . import ENTRY_POINT_GROUP, backends

    known = backends()
    if as_json:
        click.echo(json.dumps(known, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"key-value backends (plugins: entry-point group {ENTRY_POINT_GROUP!r})")
    table.add_column("scheme")
    table.add_column("class")
    table.add_column("source")
    for scheme, info in sorted(known.items()):
        table.add_row(f"{scheme}://", info["target"], info["source"])
    Console().print(table)


@kv.command("migrate")
@click.option("--from", "src", required=True, metavar="URL", help="store to copy from")
@click.option("--to", "dst", required=True, metavar="URL", help="store to copy to")
@click.option("--verify", is_flag=True, help="check source checksums and read every copy back")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--restart", is_flag=True, help="ignore the checkpoint and copy everything again")
@click.option("--database", "database_url", metavar="URL", help="metadata DB (default: from settings)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result on stdout")
def kv_migrate(src: str, dst: str, verify: bool, batch: int, restart: bool, database_url: str | None,
               as_json: bool) -> None:
    """Copy every body named by the event index from one store to another (resumable)."""
    from .migrate import migrate

    with _kv_errors():
        db = _database(database_url)
        try:
            with _progress_bar("migrate", not as_json and sys.stderr.isatty()) as update:
                result = migrate(src, dst, db, verify=verify, progress=update, batch=batch, restart=restart)
        finally:
            db.dispose()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(
            f"{redact_url(src)} -> {redact_url(dst)}: {result.scanned} of {result.total} indexed events, "
            f"copied {result.copied}, missing in source {result.missing}, corrupt {result.corrupt}"
            + (f", verified {result.verified}, verify failures {result.verify_failed}" if verify else "")
            + (f" (resumed after events.id {result.resumed_from})" if result.resumed_from else "")
        )
        for key in result.missing_keys[:10]:
            click.echo(f"  missing: {key}")
        for key in result.corrupt_keys[:10]:
            click.echo(f"  corrupt: {key}")
        if not result.ok:
            click.echo("next: missing bodies may have been removed by retention; run `eventpipe kv verify` "
                       "on the source to see whether they are really lost", err=True)
    if not result.ok:
        sys.exit(EXIT_PROBLEMS)


@kv.command("verify")
@click.argument("url")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--database", "database_url", metavar="URL", help="metadata DB (default: from settings)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result on stdout")
def kv_verify(url: str, batch: int, database_url: str | None, as_json: bool) -> None:
    """Check that every indexed body exists in URL and passes its checksum. Exit 1 if not."""
    from .migrate import verify

    with _kv_errors():
        db = _database(database_url)
        try:
            with _progress_bar("verify", not as_json and sys.stderr.isatty()) as update:
                result = verify(url, db, progress=update, batch=batch)
        finally:
            db.dispose()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(f"{redact_url(url)}: {result.total} indexed, ok {result.ok_count}, "
                   f"missing {result.missing}, corrupt {result.corrupt}")
        for key in result.missing_keys[:10]:
            click.echo(f"  missing: {key}")
        for key in result.corrupt_keys[:10]:
            click.echo(f"  corrupt: {key}")
        if not result.ok:
            click.echo("next: restore the listed bodies from another store with `eventpipe kv migrate "
                       "--from OTHER --to THIS --verify`, or delete their events", err=True)
    if not result.ok:
        sys.exit(EXIT_PROBLEMS)
