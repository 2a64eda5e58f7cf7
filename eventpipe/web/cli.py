"""``eventpipe web`` (serve the console) and ``eventpipe users`` (who may sign in)."""

from __future__ import annotations

import json
from typing import Any

import click


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _rt() -> Any:
    from eventpipe.config import ConfigError
    from eventpipe.runtime import open_runtime

    try:
        return open_runtime()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind; the console is for this machine unless you say otherwise")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free port (printed)")
@click.option("--json", "as_json", is_flag=True, help="print {\"url\": ...} as JSON once listening")
def web(host: str, port: int, as_json: bool) -> None:
    """Serve the web console (issues, queues, workers, schedules); sign in with `eventpipe users add`."""
    from eventpipe.metadata.users import list_users
    from eventpipe.web.server import serve

    rt = _rt()
    if not list_users(rt.db):
        click.echo("no console user yet: create one with `eventpipe users add NAME --role admin`", err=True)

    def ready(url: str) -> None:
        if as_json:
            click.echo(json.dumps({"url": url, "embedded": rt.settings.embedded}), nl=True)
        else:
            click.echo(f"eventpipe console on {url} (Ctrl-C stops it)")

    try:
        serve(rt, host=host, port=port, on_ready=ready)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}; pick another --port") from None


@click.group("users")
def users() -> None:
    """Console users: add (prints a generated password), list, remove."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--reset", is_flag=True, help="give an existing user a new password (and this role)")
@click.option("--json", "as_json", is_flag=True)
def users_add(name: str, role: str, reset: bool, as_json: bool) -> None:
    """Create NAME and print its generated password (shown once; stored as a scrypt hash)."""
    from eventpipe.metadata.users import UserError, add_user

    try:
        password = add_user(_rt().db, name, role, replace=reset)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _emit({"name": name, "role": role, "password": password})
    else:
        click.echo(f"user {name} ({role}) password: {password}")
        click.echo("it is shown only now; `eventpipe users add NAME --reset` makes a new one", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
def users_list(as_json: bool) -> None:
    from eventpipe.metadata.users import list_users

    rows = list_users(_rt().db)
    if as_json:
        _emit(rows)
        return
    for r in rows:
        click.echo(f"{r['name']}\t{r['role']}\t{r['created_at']}")
    if not rows:
        click.echo("no users; `eventpipe users add NAME --role admin`")


@users.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def users_remove(name: str, as_json: bool) -> None:
    """Remove NAME; its open sessions stop working at their next request."""
    from eventpipe.metadata.users import remove_user

    removed = remove_user(_rt().db, name)
    if as_json:
        _emit({"name": name, "removed": removed})
    elif not removed:
        raise click.ClickException(f"no user {name!r}; see `eventpipe users list`")
    else:
        click.echo(f"user {name} removed")
