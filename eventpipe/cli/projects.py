"""``eventpipe projects``: projects and their ingest keys."""

from __future__ import annotations

import click

from eventpipe.ingest.cors import parse_origins
from eventpipe.metadata.queries import ensure_project, list_projects

from ._common import emit_json, group, json_option, open_rt


@group()
def projects() -> None:
    """Projects and their ingest keys."""


@projects.command("add")
@click.argument("project_id", type=int)
@click.argument("name")
@click.option(
    "--origin", "origins", multiple=True,
    help="browser origin allowed to send events (repeatable): '*', https://app.example.com, app.example.com or "
    "*.example.com; given, it replaces the list (a new project allows '*')",
)
@click.option("--no-origins", is_flag=True, help="allow no browser origin (server-side SDKs only)")
@json_option
def projects_add(project_id: int, name: str, origins: tuple[str, ...], no_origins: bool, as_json: bool) -> None:
    """Create a project (idempotent) and print its ingest key and allowed browser origins."""
    wanted = [] if no_origins else (list(origins) or None)
    p = ensure_project(open_rt().db, project_id, name, origins=wanted)
    allowed = parse_origins(p.allowed_origins)
    if as_json:
        emit_json({"id": p.id, "name": p.name, "ingest_key": p.ingest_key, "allowed_origins": allowed})
    else:
        click.echo(f"project {p.id} {p.name}: ingest key {p.ingest_key}; browser origins: {' '.join(allowed) or 'none'}")


@projects.command("list")
@json_option
def projects_list(as_json: bool) -> None:
    """Every project: id and name."""
    rows = [{"id": p.id, "name": p.name} for p in list_projects(open_rt().db)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['name']}")


__all__ = ["projects"]
