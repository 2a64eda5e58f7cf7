"""``eventpipe projects``: projects and their ingest keys."""

from __future__ import annotations

import click

from eventpipe.metadata.queries import ensure_project, list_projects

from ._common import emit_json, group, json_option, open_rt


@group()
def projects() -> None:
    """Projects and their ingest keys."""


@projects.command("add")
@click.argument("project_id", type=int)
@click.argument("name")
@json_option
def projects_add(project_id: int, name: str, as_json: bool) -> None:
    """Create a project (idempotent) and print its ingest key."""
    p = ensure_project(open_rt().db, project_id, name)
    if as_json:
        emit_json({"id": p.id, "name": p.name, "ingest_key": p.ingest_key})
    else:
        click.echo(f"project {p.id} {p.name}: ingest key {p.ingest_key}")


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
