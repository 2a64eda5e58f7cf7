"""Real receivers for notification tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver
that checks the HMAC signature, both on free loopback ports, collecting what they accept."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from eventpipe.notify.transport import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from eventpipe.testing.ports import free_port  # noqa: E402,F401 - the one free_port


@dataclass
class Mailbox:
    """Messages the SMTP server accepted. ``on_data`` runs after a message is stored and before
    the server answers 250 (a test can block there to kill a sender mid-send)."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_data: Callable[[Message], None] | None = None
    url: str = ""
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        msg = email.message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append(msg)
        if self.on_data is not None:
            import asyncio

            await asyncio.get_running_loop().run_in_executor(None, self.on_data, msg)
        return "250 OK"

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def keys(self) -> list[str]:
        return [str(m["X-Eventpipe-Send"]) for m in self.snapshot()]


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url, box.port = f"smtp://127.0.0.1:{port}", port
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class WebhookReceiver:
    """Accepts POSTs whose signature verifies; ``fail_first`` answers 500 to the first N requests,
    ``always_status`` answers that status to every request."""

    secret: bytes
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    requests: int = 0
    fail_first: int = 0
    always_status: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliveries(self) -> list[str]:
        with self.lock:
            return [r["delivery"] for r in self.received]


def _handler(rx: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rx.lock:
                rx.requests += 1
                n = rx.requests
            if not verify(rx.secret, body, self.headers.get(SIGNATURE_HEADER)):
                with rx.lock:
                    rx.bad_signatures += 1
                self.send_response(401)
            elif rx.always_status is not None or n <= rx.fail_first:
                self.send_response(rx.always_status or 500)
            else:
                with rx.lock:
                    rx.received.append({"delivery": self.headers.get(DELIVERY_HEADER), "body": json.loads(body)})
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver(secret=b"test-webhook-secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        server.shutdown()
        server.server_close()
