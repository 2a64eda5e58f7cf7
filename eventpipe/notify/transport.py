"""The two irrevocable edges: an SMTP send and a webhook POST.

Each returns normally when the remote accepted, raises :class:`Rejected` when the remote
definitely did not take the message (connection refused, an SMTP error reply, an HTTP error
status: safe to retry), and :class:`Ambiguous` when the remote may have taken it (the connection
dropped after the body was sent): the caller must not retry those, that is the at-most-once step.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

SIGNATURE_HEADER = "X-Eventpipe-Signature"
DELIVERY_HEADER = "X-Eventpipe-Delivery"


class Rejected(Exception):
    """The remote did not accept the message; ``permanent`` ones are not worth retrying."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Ambiguous(Exception):
    """The remote may or may not have accepted the message."""


def sign(secret: bytes, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes. Receivers recompute and compare
    with :func:`hmac.compare_digest`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def post_webhook(url: str, body: bytes, *, secret: bytes | None, delivery: str, timeout: float) -> int:
    """POST ``body`` (JSON) and return the status; 2xx is accepted."""
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: delivery, "User-Agent": "eventpipe-webhooks"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Rejected(f"cannot connect to {_host(url)}: {exc}") from None
    except httpx.UnsupportedProtocol as exc:
        raise Rejected(f"{url!r} is not an http(s) URL: {exc}", permanent=True) from None
    except httpx.HTTPError as exc:  # sent, then timed out or dropped: may have been received
        raise Ambiguous(f"{type(exc).__name__} after sending to {_host(url)}: {exc}") from None
    if 200 <= response.status_code < 300:
        return response.status_code
    permanent = response.status_code in (400, 401, 403, 404, 405, 410, 413, 422)
    raise Rejected(f"HTTP {response.status_code} from {_host(url)}: {response.text[:200]}", permanent=permanent)


def _host(url: str) -> str:
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def build_email(sender: str, to: str, subject: str, text: str, *, key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(idstring=hashlib.sha1(key.encode()).hexdigest()[:16], domain="eventpipe")
    msg["X-Eventpipe-Send"] = key
    msg.set_content(text)
    return msg


def send_email(smtp_url: str, msg: EmailMessage, *, timeout: float = 30.0) -> None:
    """Deliver over SMTP: ``smtp://[user:password@]host:port[?starttls=true]`` or ``smtps://``."""
    parts = urlsplit(smtp_url)
    host, port = parts.hostname or "localhost", parts.port
    starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port or 465, timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port or 25, timeout=timeout)
    except OSError as exc:
        raise Rejected(f"cannot connect to SMTP {host}:{port}: {exc}") from None
    try:
        try:
            client.ehlo()
            if starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
        except smtplib.SMTPAuthenticationError as exc:
            raise Rejected(f"SMTP login refused ({exc.smtp_code}); check the user and password in EVENTPIPE_SMTP_URL", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Rejected(f"SMTP session with {host}:{port} failed before sending: {exc}") from None
        try:
            refused = client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Rejected(f"SMTP refused every recipient: {exc.recipients}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise Rejected(f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}", permanent=500 <= exc.smtp_code < 600) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise Ambiguous(f"SMTP connection lost while sending: {exc}") from None
        if refused:
            raise Rejected(f"SMTP refused recipients: {sorted(refused)}", permanent=True)
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
