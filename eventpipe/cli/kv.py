"""``eventpipe kv``: list backends, move bodies between stores, verify a store against the index.

Progress goes to stderr and results to stdout (``--json`` for machines), so the output can be
piped while an operator still sees a progress bar. Exit codes: 0 all good, 1 problems found
(missing or corrupt bodies), 2 usage or configuration error, 3 a store was unreachable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from eventpipe.config import get_settings
from eventpipe.kvstore import ENTRY_POINT_GROUP, backends
from eventpipe.kvstore.base import redact_url
from eventpipe.kvstore.migrate import migrate, verify
from eventpipe.metadata.db import Database

from ._common import ExitCode, emit_json, err, group, json_option, out, table


def _database(database_url: str | None) -> Database:
    db = Database(database_url or get_settings().resolved_database_url())
    db.upgrade()
    return db


@contextmanager
def _progress_bar(label: str, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar on stderr; a no-op when stderr is not a terminal or --json is on."""
    if not enabled:
        yield lambda _p: None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[extra]}"), TimeRemainingColumn(), console=err,
                  transient=False) as bar:
        task = bar.add_task(label, total=None, extra="")

        def update(p: Any) -> None:
            extra = f"copied {p.copied}" if label == "migrate" else f"ok {p.copied}"
            if p.missing or p.corrupt:
                extra += f", missing {p.missing}, corrupt {p.corrupt}"
            bar.update(task, total=p.total, completed=p.done, extra=extra)

        yield update


def _list_keys(missing: list[str], corrupt: list[str]) -> None:
    for key in missing[:10]:
        click.echo(f"  missing: {key}")
    for key in corrupt[:10]:
        click.echo(f"  corrupt: {key}")


@group()
def kv() -> None:
    """Event-body key-value stores: backends, migration, verification."""


@kv.command("backends")
@json_option
def kv_backends(as_json: bool) -> None:
    """List URL schemes: built-in backends and plugins installed via entry points."""
    known = backends()
    if as_json:
        emit_json(known)
        return
    out.print(table(["scheme", "class", "source"],
                    [[f"{scheme}://", info["target"], info["source"]] for scheme, info in sorted(known.items())],
                    title=f"key-value backends (plugins: entry-point group {ENTRY_POINT_GROUP!r})"))


@kv.command("migrate")
@click.option("--from", "src", required=True, metavar="URL", help="store to copy from")
@click.option("--to", "dst", required=True, metavar="URL", help="store to copy to")
@click.option("--verify", "check", is_flag=True, help="check source checksums and read every copy back")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--restart", is_flag=True, help="ignore the checkpoint and copy everything again")
@click.option("--database", "database_url", metavar="URL", help="metadata DB (default: from settings)")
@json_option
def kv_migrate(src: str, dst: str, check: bool, batch: int, restart: bool, database_url: str | None,
               as_json: bool) -> None:
    """Copy every body named by the event index from one store to another (resumable)."""
    db = _database(database_url)
    try:
        with _progress_bar("migrate", not as_json and sys.stderr.isatty()) as update:
            result = migrate(src, dst, db, verify=check, progress=update, batch=batch, restart=restart)
    finally:
        db.dispose()
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(
            f"{redact_url(src)} -> {redact_url(dst)}: {result.scanned} of {result.total} indexed events, "
            f"copied {result.copied}, missing in source {result.missing}, corrupt {result.corrupt}"
            + (f", verified {result.verified}, verify failures {result.verify_failed}" if check else "")
            + (f" (resumed after events.id {result.resumed_from})" if result.resumed_from else "")
        )
        _list_keys(result.missing_keys, result.corrupt_keys)
        if not result.ok:
            click.echo("next: missing bodies may have been removed by retention; run `eventpipe kv verify` "
                       "on the source to see whether they are really lost", err=True)
    if not result.ok:
        sys.exit(ExitCode.FAILED)


@kv.command("verify")
@click.argument("url")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--database", "database_url", metavar="URL", help="metadata DB (default: from settings)")
@json_option
def kv_verify(url: str, batch: int, database_url: str | None, as_json: bool) -> None:
    """Check that every indexed body exists in URL and passes its checksum. Exit 1 if not."""
    db = _database(database_url)
    try:
        with _progress_bar("verify", not as_json and sys.stderr.isatty()) as update:
            result = verify(url, db, progress=update, batch=batch)
    finally:
        db.dispose()
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(f"{redact_url(url)}: {result.total} indexed, ok {result.ok_count}, "
                   f"missing {result.missing}, corrupt {result.corrupt}")
        _list_keys(result.missing_keys, result.corrupt_keys)
        if not result.ok:
            click.echo("next: restore the listed bodies from another store with `eventpipe kv migrate "
                       "--from OTHER --to THIS --verify`, or delete their events", err=True)
    if not result.ok:
        sys.exit(ExitCode.FAILED)


__all__ = ["kv"]


def _show_job(job: dict[str, Any] | None, job_id: str, as_json: bool) -> None:
    if job is None:
        if as_json:
            emit_json({"error": "not_found", "job_id": job_id})
        err.print(f"[red]no range job {job_id!r}[/red]: start one with `eventpipe kv migrate-range` or `kv verify-range`")
        sys.exit(ExitCode.FAILED)
    if as_json:
        emit_json(job)
        return
    out.print(table(["job", "kind", "state", "scanned", "copied", "missing", "corrupt", "repaired"],
                    [[job["job_id"], job["kind"], job["state"], job["scanned"], job["copied"], job["missing"], job["corrupt"], job["repaired"]]]))


@kv.command("migrate-range")
@click.option("--from", "src", required=True, metavar="URL", help="store to copy from")
@click.option("--to", "dst", required=True, metavar="URL", help="store to copy to")
@click.option("--job", "job_id", required=True, help="a name for this job; send it again to resume")
@click.option("--chunk", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--verify", "check", is_flag=True, help="skip source bodies failing their checksum")
@json_option
def kv_migrate_range(src: str, dst: str, job_id: str, chunk: int, check: bool, as_json: bool) -> None:
    """Copy bodies as queued work (kv.migrate_range), chunk by chunk; resumable by job name."""
    from eventpipe.runtime import open_runtime
    from eventpipe.tasks.kv import migrate_range, range_job

    rt = open_runtime()
    migrate_range.send(rt.context, job_id=job_id, src_url=src, dst_url=dst, chunk=chunk, verify=check)
    if rt.settings.embedded:
        rt.broker.run_until_idle()
    _show_job(range_job(rt.db, job_id), job_id, as_json)


@kv.command("verify-range")
@click.option("--job", "job_id", required=True, help="a name for this job; send it again to resume")
@click.option("--url", default=None, metavar="URL", help="store to check (default: the configured one)")
@click.option("--repair-from", default=None, metavar="URL", help="copy good bodies from this store over bad ones")
@click.option("--chunk", default=500, show_default=True, type=click.IntRange(1, 10000))
@json_option
def kv_verify_range(job_id: str, url: str | None, repair_from: str | None, chunk: int, as_json: bool) -> None:
    """Check (and repair) bodies as queued work (kv.verify_range); exit 1 if any is missing or corrupt."""
    from eventpipe.runtime import open_runtime
    from eventpipe.tasks.kv import range_job, verify_range

    rt = open_runtime()
    verify_range.send(rt.context, job_id=job_id, url=url, repair_from=repair_from, chunk=chunk)
    if rt.settings.embedded:
        rt.broker.run_until_idle()
    job = range_job(rt.db, job_id)
    _show_job(job, job_id, as_json)
    if job is not None and job["state"] == "done" and job["missing"] + job["corrupt"] > job["repaired"]:
        sys.exit(ExitCode.FAILED)
