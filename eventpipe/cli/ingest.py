"""``eventpipe ingest serve``: the HTTP ingest endpoint (Sentry's store and envelope protocols)."""

from __future__ import annotations

import click

from ._common import group, open_rt


@group("ingest")
def ingest() -> None:
    """The HTTP ingest endpoint."""


@ingest.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="events/s per project")
@click.option("--burst", type=float, default=None, help="events a project may send at once (default: 2 x rate)")
def serve(host: str, port: int, rate: float, burst: float | None) -> None:
    """Serve Sentry's store and envelope endpoints; in the embedded mode, workers run in-process."""
    import uvicorn

    from eventpipe.ingest.server import create_app

    rt = open_rt()
    app = create_app(rt, rate_per_project=rate, burst=burst if burst is not None else rate * 2)
    with rt.broker.workers(threads=4):  # the embedded broker's workers run in this process
        uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["ingest"]
