"""A RabbitMQ node URL, parsed once into one canonical form, and the helpers every caller shares.

Why: the same node URL is read by pika (publishers, consumers, ops), by RabbitMQ's own URI parser
(federation upstreams, shovels) and by people (``--node HOST:PORT``). They disagree on the edges:
pika reads ``amqp://h:5672/`` (empty path) as the vhost ``/``, RabbitMQ reads it as the *empty*
vhost, so every federation link and shovel built from it fails with ``not_allowed``; and an
``amqps://`` URL without a port means 5671, not 5672. So every URL goes through
:func:`parse_node` once and everyone uses :attr:`AmqpNode.url` (explicit port and vhost,
``%2F`` for ``/``) and :attr:`AmqpNode.name` (``HOST:PORT``).

Also here, so they exist once: :func:`redact_url` (credentials out of anything shown; defined in
:mod:`eventpipe.errors`, below every layer that shows a URL, and re-exported here),
:func:`connect` (the one blocking pika connection opener, with its timeouts) and
:func:`queue_depth` (the exact ready count by passive declare; management stats lag).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions

from eventpipe.errors import redact_url  # noqa: F401 - re-exported: the queues import it from here

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
DEFAULT_VHOST = "/"

class NodeURLError(ValueError):
    """A broker URL that cannot name a RabbitMQ node; the message says what to write instead."""


def strip_credentials(url: str) -> str:
    """The URL without its userinfo (same as :func:`redact_url`; named for the intent)."""
    return redact_url(url)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class AmqpNode:
    """One RabbitMQ node as eventpipe addresses it. Build it with :func:`parse_node`."""

    scheme: str  # amqp | amqps
    host: str
    port: int
    vhost: str
    username: str | None = None
    password: str | None = None
    query: str = ""  # passed through: pika and RabbitMQ options (heartbeat, TLS files, ...)

    @property
    def name(self) -> str:
        """``HOST:PORT``: how operators and ``--node`` name a node (the one definition)."""
        return f"{_bracket(self.host)}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    @property
    def url(self) -> str:
        """The canonical URL: explicit port and vhost (``/`` as ``%2F``), credentials kept.
        pika and RabbitMQ's URI parser (federation, shovels) read it identically."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        tail = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{auth}{_bracket(self.host)}:{self.port}/{quote(self.vhost, safe='')}{tail}"

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"AmqpNode({self.redacted})"


@lru_cache(maxsize=256)
def parse_node(url: str) -> AmqpNode:
    """Parse a broker URL (``amqp://`` or ``amqps://``) into its canonical :class:`AmqpNode`."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise NodeURLError(f"invalid broker URL {redact_url(url)!r}: {exc}; use amqp://user:pass@host:5672/%2F") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise NodeURLError(
            f"broker URL {redact_url(url)!r} must start with amqp:// or amqps:// (e.g. amqp://user:pass@host:5672/%2F)"
        )
    if not parts.hostname:
        raise NodeURLError(f"broker URL {redact_url(url)!r} names no host; use amqp://user:pass@host:5672/%2F")
    path = parts.path
    # "" and "/" both mean the default vhost "/" (pika's reading); "/%2F" is "/" spelled out
    vhost = unquote(path[1:]) if len(path) > 1 else DEFAULT_VHOST
    return AmqpNode(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        vhost=vhost,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        query=parts.query,
    )


def canonical_url(url: str) -> str:
    return parse_node(url).url


def node_name(url: str) -> str:
    """``amqps://u:p@h/`` -> ``h:5671``: the ``HOST:PORT`` of a broker URL."""
    return parse_node(url).name


def node_vhost(url: str) -> str:
    return parse_node(url).vhost


def normalize_node_name(name: str) -> str:
    """``localhost:5672`` stays, ``h`` -> ``h:5672``, a full URL -> its name: what ``--node`` accepts."""
    if "://" in name:
        return node_name(name)
    return name if re.search(r":\d+$", name) else f"{name}:{DEFAULT_PORTS['amqp']}"


def connection_parameters(
    url: str,
    *,
    socket_timeout: float = 5.0,
    heartbeat: int | None = 30,
    blocked_timeout: float = 60.0,
    attempts: int = 1,
    retry_delay: float = 1.0,
) -> pika.URLParameters:
    """pika parameters for a node: the canonical URL plus eventpipe's timeouts, tuned here only."""
    params = pika.URLParameters(canonical_url(url))
    params.socket_timeout = socket_timeout
    params.stack_timeout = max(socket_timeout * 3, 15.0)
    if heartbeat is not None:
        params.heartbeat = heartbeat
    params.blocked_connection_timeout = blocked_timeout
    params.connection_attempts = attempts
    params.retry_delay = retry_delay
    return params


def connect(
    url: str,
    *,
    timeout: float = 5.0,
    heartbeat: int | None = 30,
    blocked_timeout: float = 60.0,
    attempts: int = 1,
    retry_delay: float = 1.0,
) -> pika.BlockingConnection:
    """Open a blocking connection to a node: the one opener (ops, declares, consumers)."""
    return pika.BlockingConnection(connection_parameters(
        url, socket_timeout=timeout, heartbeat=heartbeat, blocked_timeout=blocked_timeout,
        attempts=attempts, retry_delay=retry_delay,
    ))


def queue_depth(where: str | pika.BlockingConnection, queue: str) -> int | None:
    """Exact ready count of ``queue`` by passive declare on a throwaway channel (management
    stats lag by the statistics interval); None when the queue does not exist on that node.

    ``where`` is an open connection (reused) or a node URL (a connection opened and closed)."""
    if isinstance(where, str):
        conn = connect(where)
        try:
            return queue_depth(conn, queue)
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - read-only connection: nothing to lose
                pass
    ch = where.channel()
    try:
        return int(ch.queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if ch.is_open:
            ch.close()


__all__ = [
    "AmqpNode", "DEFAULT_PORTS", "DEFAULT_VHOST", "NodeURLError", "canonical_url", "connect",
    "connection_parameters", "node_name", "node_vhost", "normalize_node_name", "parse_node",
    "queue_depth", "redact_url", "strip_credentials",
]
