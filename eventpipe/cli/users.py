"""``eventpipe users``: who may sign in to the web console, and with which role."""

from __future__ import annotations

import click

from eventpipe.metadata.users import ROLES, UserError, add_user, list_users, remove_user

from ._common import emit_json, err, group, json_option, open_rt


@group()
def users() -> None:
    """Console users: add (prints a generated password), list, remove."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="admin acts (resolve, pause, replay...); viewer only looks")
@click.option("--reset", is_flag=True, help="give an existing user a new password (and this role)")
@json_option
def users_add(name: str, role: str, reset: bool, as_json: bool) -> None:
    """Create NAME and print its generated password (shown once; stored as a scrypt hash)."""
    password = add_user(open_rt().db, name, role, replace=reset)
    if as_json:
        emit_json({"name": name, "role": role, "password": password})
        return
    click.echo(f"user {name} ({role}) password: {password}")
    err.print("the password is shown only now; `eventpipe users add NAME --reset` makes a new one", highlight=False)


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """Every console user with its role."""
    rows = list_users(open_rt().db)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['name']}\t{r['role']}\t{r['created_at']}")
    if not rows:
        click.echo("no users; `eventpipe users add NAME --role admin`")


@users.command("remove")
@click.argument("name")
@json_option
def users_remove(name: str, as_json: bool) -> None:
    """Remove NAME; its open sessions stop working at their next request."""
    if not remove_user(open_rt().db, name):
        raise UserError(f"no user {name!r}")
    if as_json:
        emit_json({"name": name, "removed": True})
    else:
        click.echo(f"user {name} removed")


__all__ = ["users"]
