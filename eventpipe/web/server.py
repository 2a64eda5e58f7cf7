"""Serving the console: a uvicorn server around :func:`eventpipe.web.app.create_app`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def serve(rt: Any, *, host: str = "127.0.0.1", port: int = 8000, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. ``on_ready`` gets the URL once the socket listens (port 0: any free port)."""
    import uvicorn

    from .app import create_app

    config = uvicorn.Config(create_app(rt), host=host, port=port, log_level="warning", access_log=False,
                            proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets=sockets)
            if server.started:
                bound = port
                for srv in getattr(server, "servers", []):
                    for sock in getattr(srv, "sockets", []):
                        bound = int(sock.getsockname()[1])  # the real port when asked for port 0
                on_ready(f"http://{host}:{bound}/")

        server.startup = startup  # type: ignore[method-assign]
    server.run()
