"""``eventpipe web``: serve the console (issues, queues, workers, schedules) behind a sign-in."""

from __future__ import annotations

import json

import click

from ._common import CommandFailed, command, err, json_option, open_rt


@command("web")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind; the console serves this machine only unless told otherwise")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free port (printed)")
@json_option
def web(host: str, port: int, as_json: bool) -> None:
    """Serve the web console; sign in with a user from `eventpipe users add NAME --role admin`."""
    from eventpipe.metadata.users import list_users
    from eventpipe.web.server import serve

    rt = open_rt()
    if not list_users(rt.db):
        err.print("no console user yet: create one with `eventpipe users add NAME --role admin`", highlight=False)

    def ready(url: str) -> None:
        if as_json:  # one line, flushed: scripts read the URL (and the port, with --port 0)
            click.echo(json.dumps({"url": url, "embedded": rt.broker.in_process}))
        else:
            click.echo(f"eventpipe console on {url} (Ctrl-C stops it)")

    try:
        serve(rt, host=host, port=port, on_ready=ready)
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc}; pick another --port") from None


__all__ = ["web"]
