"""A small typed client for the RabbitMQ management HTTP API.

Why a client of our own: federation setup, status, shovels and ops all need the same dozen calls,
the same error translation ("what to do next") and the same care with credentials. Credentials come
from the URL's userinfo and are sent as HTTP basic auth; the client keeps only the URL *without*
them, so nothing it logs, prints or raises ever carries a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from eventpipe.errors import EventpipeError

from .nodes import DEFAULT_VHOST, node_name, node_vhost, parse_node, redact_url, strip_credentials

DEFAULT_MANAGEMENT_PORT = 15672


class ManagementError(EventpipeError, RuntimeError):
    """A management API call failed; ``str()`` says which node, what happened and what to do."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"management API on {url}: {message}")
        self.url = url
        self.status = status


class ManagementUnavailable(ManagementError):
    """The management API could not be reached at all (node down, plugin off, wrong port)."""

    retryable = True
    exit_code = 3


class NotFound(ManagementError):
    """The object does not exist (HTTP 404)."""


# ---------------------------------------------------------------------------------------------
# URLs and credentials


def url_credentials(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


def _with_credentials(url: str, creds: tuple[str, str] | None) -> str:
    if creds is None:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(creds[0], safe='')}:{quote(creds[1], safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def default_management_url(amqp_url: str) -> str:
    """The conventional management URL of a node: same host, port 15672, same credentials."""
    host = parse_node(amqp_url).host
    if ":" in host:
        host = f"[{host}]"
    base = f"http://{host}:{DEFAULT_MANAGEMENT_PORT}"
    return _with_credentials(base, url_credentials(amqp_url))


def management_urls_for(settings: Any) -> list[str]:
    """Management URL of every broker node, in the order of ``settings.broker_urls``.

    Default: each AMQP URL's host on port 15672 with the AMQP URL's credentials. When
    ``settings.management_urls`` is set it must name one URL per broker URL (same order); a URL
    without credentials inherits those of its AMQP URL, so passwords live in one place.
    """
    amqp_urls: list[str] = list(getattr(settings, "broker_urls", None) or [])
    if not amqp_urls and getattr(settings, "broker_url", None):
        amqp_urls = [settings.broker_url]
    explicit: list[str] = list(getattr(settings, "management_urls", None) or [])
    if not explicit:
        return [default_management_url(u) for u in amqp_urls]
    if len(explicit) != len(amqp_urls):
        raise ValueError(
            f"EVENTPIPE_MANAGEMENT_URLS names {len(explicit)} URL(s) but EVENTPIPE_BROKER_URLS names "
            f"{len(amqp_urls)}: give one management URL per broker node, in the same order, "
            "or unset EVENTPIPE_MANAGEMENT_URLS to use <amqp host>:15672"
        )
    out = []
    for mgmt, amqp in zip(explicit, amqp_urls):
        if not mgmt.startswith(("http://", "https://")):
            raise ValueError(f"EVENTPIPE_MANAGEMENT_URLS: expected http(s):// URLs, got {redact_url(mgmt)!r}")
        out.append(mgmt if url_credentials(mgmt) else _with_credentials(mgmt, url_credentials(amqp)))
    return out


# ---------------------------------------------------------------------------------------------
# Typed results


@dataclass(frozen=True)
class QueueStats:
    """One queue as the management API sees it (counts lag by the statistics interval)."""

    name: str
    vhost: str
    messages_ready: int
    messages_unacked: int
    consumers: int
    publish_rate: float
    deliver_rate: float
    ack_rate: float
    policy: str | None
    durable: bool
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return self.messages_ready + self.messages_unacked

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> QueueStats:
        ms = d.get("message_stats") or {}

        def rate(key: str) -> float:
            return float((ms.get(f"{key}_details") or {}).get("rate", 0.0))

        return cls(
            name=d["name"], vhost=d.get("vhost", DEFAULT_VHOST),
            messages_ready=int(d.get("messages_ready") or 0),
            messages_unacked=int(d.get("messages_unacknowledged") or 0),
            consumers=int(d.get("consumers") or 0),
            publish_rate=rate("publish"), deliver_rate=rate("deliver_get"), ack_rate=rate("ack"),
            policy=d.get("policy") or None, durable=bool(d.get("durable", False)),
            arguments=dict(d.get("arguments") or {}),
        )


@dataclass(frozen=True)
class FederationLink:
    """One federation link as reported by the node that runs it (the downstream)."""

    upstream: str
    queue: str | None
    exchange: str | None
    status: str
    error: str | None
    uri: str | None
    vhost: str

    @property
    def running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> FederationLink:
        uri = d.get("uri")
        return cls(
            upstream=d.get("upstream", ""), queue=d.get("queue"), exchange=d.get("exchange"),
            status=d.get("status", "unknown"), error=_short_error(d.get("error")),
            uri=redact_url(uri) if uri else None, vhost=d.get("vhost", DEFAULT_VHOST),
        )


def _short_error(err: Any) -> str | None:
    if not err:
        return None
    text = err if isinstance(err, str) else repr(err)
    text = redact_url(text)  # Erlang errors may echo URIs
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------
# The client


class ManagementClient:
    """Synchronous client for one node's management API. Use as a context manager or ``close()``."""

    def __init__(self, url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        creds = url_credentials(url) or ("guest", "guest")
        self.url = strip_credentials(url).rstrip("/")
        self._http = httpx.Client(base_url=self.url, auth=creds, timeout=timeout, transport=transport)

    # plumbing ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ManagementClient({self.url})"

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        try:
            resp = self._http.request(method, path, json=json)
        except httpx.ConnectError as exc:
            raise ManagementUnavailable(
                self.url,
                f"refused ({exc}): start the node, enable rabbitmq_management "
                "(rabbitmq-plugins enable rabbitmq_management) or set EVENTPIPE_MANAGEMENT_URLS",
            ) from None
        except httpx.TimeoutException:
            raise ManagementUnavailable(self.url, "timed out: is the node overloaded or the port wrong?") from None
        except httpx.HTTPError as exc:
            raise ManagementUnavailable(self.url, f"{type(exc).__name__}: {exc}") from None
        if resp.status_code == 401:
            raise ManagementError(
                self.url, "401 unauthorized: put user:password in the URL (EVENTPIPE_BROKER_URLS or "
                "EVENTPIPE_MANAGEMENT_URLS) of a user with the 'administrator' or 'policymaker' tag",
                status=401,
            )
        if resp.status_code == 404:
            raise NotFound(self.url, f"{method} {path}: not found", status=404)
        if resp.status_code >= 400:
            reason = ""
            try:
                body = resp.json()
                reason = body.get("reason") or body.get("error") or ""
            except ValueError:
                reason = resp.text[:200]
            hint = ""
            if "federation" in path and resp.status_code == 400:
                hint = " (is rabbitmq_federation enabled?)"
            elif "shovel" in path and resp.status_code == 400:
                hint = " (is rabbitmq_shovel enabled?)"
            raise ManagementError(self.url, f"{method} {path}: HTTP {resp.status_code} {reason}{hint}",
                                  status=resp.status_code)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    @staticmethod
    def _v(vhost: str) -> str:
        return quote(vhost, safe="")

    @staticmethod
    def _n(name: str) -> str:
        return quote(name, safe="")

    # overview and health ----------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        return self._request("GET", "/api/overview")

    def node_name(self) -> str:
        return str(self.overview().get("node", ""))

    def healthy(self) -> tuple[bool, str]:
        """(ok, reason): the node answers and has no resource alarm (memory, disk)."""
        try:
            self._request("GET", "/api/health/checks/alarms")
            return True, "ok"
        except ManagementError as exc:
            return False, str(exc)

    def enabled_plugins(self) -> set[str]:
        """Plugins running on the node (from the overview's listener/extension data)."""
        nodes = self._request("GET", "/api/nodes") or []
        names: set[str] = set()
        for node in nodes:
            for app in node.get("applications", []):
                names.add(app.get("name", ""))
        return names

    # queues -----------------------------------------------------------------------------------
    def queues(self, vhost: str = DEFAULT_VHOST) -> list[QueueStats]:
        return [QueueStats.from_api(q) for q in self._request("GET", f"/api/queues/{self._v(vhost)}")]

    def queue(self, name: str, vhost: str = DEFAULT_VHOST) -> QueueStats | None:
        try:
            return QueueStats.from_api(self._request("GET", f"/api/queues/{self._v(vhost)}/{self._n(name)}"))
        except NotFound:
            return None

    # federation -------------------------------------------------------------------------------
    def upstreams(self, vhost: str = DEFAULT_VHOST) -> dict[str, dict[str, Any]]:
        """Federation upstreams by name -> their value."""
        items = self._request("GET", f"/api/parameters/federation-upstream/{self._v(vhost)}") or []
        return {p["name"]: p["value"] for p in items}

    def put_upstream(self, name: str, value: dict[str, Any], vhost: str = DEFAULT_VHOST) -> None:
        self._request("PUT", f"/api/parameters/federation-upstream/{self._v(vhost)}/{self._n(name)}",
                      {"value": value})

    def delete_upstream(self, name: str, vhost: str = DEFAULT_VHOST) -> bool:
        return self._delete(f"/api/parameters/federation-upstream/{self._v(vhost)}/{self._n(name)}")

    def upstream_sets(self, vhost: str = DEFAULT_VHOST) -> dict[str, list[dict[str, Any]]]:
        items = self._request("GET", f"/api/parameters/federation-upstream-set/{self._v(vhost)}") or []
        return {p["name"]: p["value"] for p in items}

    def put_upstream_set(self, name: str, members: list[dict[str, Any]], vhost: str = DEFAULT_VHOST) -> None:
        self._request("PUT", f"/api/parameters/federation-upstream-set/{self._v(vhost)}/{self._n(name)}",
                      {"value": members})

    def delete_upstream_set(self, name: str, vhost: str = DEFAULT_VHOST) -> bool:
        return self._delete(f"/api/parameters/federation-upstream-set/{self._v(vhost)}/{self._n(name)}")

    def federation_links(self, vhost: str = DEFAULT_VHOST) -> list[FederationLink]:
        try:
            items = self._request("GET", f"/api/federation-links/{self._v(vhost)}") or []
        except NotFound:
            raise ManagementError(
                self.url, "no /api/federation-links: enable rabbitmq_federation_management on this node",
                status=404,
            ) from None
        return [FederationLink.from_api(d) for d in items]

    # policies ---------------------------------------------------------------------------------
    def policies(self, vhost: str = DEFAULT_VHOST) -> dict[str, dict[str, Any]]:
        items = self._request("GET", f"/api/policies/{self._v(vhost)}") or []
        return {p["name"]: p for p in items}

    def put_policy(self, name: str, pattern: str, definition: dict[str, Any], *, apply_to: str = "queues",
                   priority: int = 0, vhost: str = DEFAULT_VHOST) -> None:
        self._request("PUT", f"/api/policies/{self._v(vhost)}/{self._n(name)}",
                      {"pattern": pattern, "definition": definition, "apply-to": apply_to, "priority": priority})

    def delete_policy(self, name: str, vhost: str = DEFAULT_VHOST) -> bool:
        return self._delete(f"/api/policies/{self._v(vhost)}/{self._n(name)}")

    # dynamic shovels --------------------------------------------------------------------------
    def put_shovel(self, name: str, value: dict[str, Any], vhost: str = DEFAULT_VHOST) -> None:
        self._request("PUT", f"/api/parameters/shovel/{self._v(vhost)}/{self._n(name)}", {"value": value})

    def shovel(self, name: str, vhost: str = DEFAULT_VHOST) -> dict[str, Any] | None:
        """The shovel's status (``state``: starting, running, terminated), or None once it is gone."""
        try:
            found = self._request("GET", f"/api/shovels/vhost/{self._v(vhost)}/{self._n(name)}")
        except NotFound:
            return None
        if isinstance(found, list):  # 3.10 answers a one-element list while the shovel exists
            return found[0] if found else None
        return found

    def shovels(self, vhost: str = DEFAULT_VHOST) -> list[dict[str, Any]]:
        return self._request("GET", f"/api/shovels/{self._v(vhost)}") or []

    def delete_shovel(self, name: str, vhost: str = DEFAULT_VHOST) -> bool:
        return self._delete(f"/api/parameters/shovel/{self._v(vhost)}/{self._n(name)}")

    def _delete(self, path: str) -> bool:
        """True when something was deleted, False when it was already gone."""
        try:
            self._request("DELETE", path)
            return True
        except NotFound:
            return False


class NodeLike(Protocol):
    """Anything naming a node's AMQP and management URLs (BrokerNode, the test RabbitNode)."""

    @property
    def amqp_url(self) -> str: ...

    @property
    def management_url(self) -> str: ...


@dataclass(frozen=True)
class BrokerNode:
    """One federated node: its AMQP URL and its management URL (both may carry credentials).

    ``amqp_url`` is canonical (explicit port and vhost, see ``eventpipe.queues.nodes``): it goes
    as is into federation upstreams and shovels, which RabbitMQ parses itself."""

    amqp_url: str
    management_url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amqp_url", parse_node(self.amqp_url).url)

    @property
    def host_port(self) -> str:
        return node_name(self.amqp_url)

    @property
    def vhost(self) -> str:
        return node_vhost(self.amqp_url)

    def client(self, timeout: float = 10.0) -> ManagementClient:
        return ManagementClient(self.management_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"BrokerNode({redact_url(self.amqp_url)}, {redact_url(self.management_url)})"


def broker_nodes(amqp_urls: Sequence[str], mgmt_urls: Sequence[str]) -> list[BrokerNode]:
    if len(amqp_urls) != len(mgmt_urls):
        raise ValueError(f"{len(amqp_urls)} AMQP URL(s) but {len(mgmt_urls)} management URL(s): give one each per node")
    return [BrokerNode(a, m) for a, m in zip(amqp_urls, mgmt_urls)]
