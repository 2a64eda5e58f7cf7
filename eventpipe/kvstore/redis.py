"""Redis and Redis Cluster backends, through redis-py.

URLs:

* ``redis://[:password@]host:6379/0?prefix=ep:body:`` (also ``rediss://`` for TLS)
* ``redis+cluster://[:password@]host:port,host:port,...?prefix=ep:body:`` (redis-py ``RedisCluster``;
  any reachable node is enough to discover the others)

Options: ``prefix`` is put in front of every key (so bodies can share a Redis with other data and
``keys()`` only sees its own); ``timeout`` is the socket timeout in seconds (default 5);
``wait=N`` makes every write wait until N replicas acknowledged it (Redis ``WAIT``,
``wait_timeout`` ms, default 2000) and fail with :class:`KVUnavailable` otherwise.

Why ``wait``: Redis replication is asynchronous, so a write acknowledged by a master in the last
moment before it dies can be missing on the replica that takes over. With ``wait=1`` a write is
only acknowledged once a replica has it, which is what "no acknowledged write lost" needs; the
price is that a shard without a live replica refuses writes until one rejoins.

TTL is native (``SET ... PX``). Batches are one ``MGET``/pipeline per node, never a loop of calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse, urlunparse

import redis as redis_py
from redis import exceptions as rex
from redis.cluster import ClusterNode, RedisCluster

from .base import KVError, KVUnavailable, check_key, redact_url

_CHUNK = 1000
_ERRORS: tuple[type[BaseException], ...] = (rex.RedisError, rex.RedisClusterException)

# Everything that means "the server (or the shard) cannot answer right now": retry later.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.MasterDownError,
    rex.ReadOnlyError,
    rex.SlotNotCoveredError,
    rex.MaxConnectionsError,
    rex.RedisClusterException,  # "cannot be connected", slots cache disagreement: topology, not data
    ConnectionError,
    TimeoutError,
)


def _split_query(url: str) -> tuple[Any, dict[str, str]]:
    parsed = urlparse(url)
    return parsed, {k: v[-1] for k, v in parse_qs(parsed.query).items()}


class RedisStore:
    """A single Redis server (or a Sentinel-managed one behind a stable address)."""

    cluster: bool = False

    def __init__(self, url: str) -> None:
        self.url = url
        parsed, query = _split_query(url)
        self.prefix = query.pop("prefix", "")
        self.wait = int(query.pop("wait", "0"))
        self.wait_timeout = int(query.pop("wait_timeout", "2000"))
        timeout = float(query.pop("timeout", "5"))
        self.client: Any = self._make_client(parsed, query, timeout)

    def _make_client(self, parsed: Any, query: dict[str, str], timeout: float) -> Any:
        clean = urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", urlencode(query), ""))
        return redis_py.Redis.from_url(
            clean, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, what: str, exc: BaseException) -> KVError:
        if isinstance(exc, _UNAVAILABLE):
            return KVUnavailable(f"{redact_url(self.url)}: {what} failed ({type(exc).__name__}: {exc})")
        if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
            return KVError(f"{redact_url(self.url)}: {what} refused ({exc}); check the password in the URL")
        return KVError(f"{redact_url(self.url)}: {what} failed ({type(exc).__name__}: {exc})")

    def _px(self, ttl: float | None) -> int | None:
        return max(1, int(ttl * 1000)) if ttl else None

    # -- protocol ------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        k = self._k(key)
        try:
            value = self.client.get(k)
        except _ERRORS as exc:
            raise self._fail(f"read of {key!r}", exc) from None
        return None if value is None else bytes(value)

    def _mget(self, keys: list[str]) -> list[Any]:
        return list(self.client.mget(keys))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        full = [self._k(k) for k in wanted]
        out: dict[str, bytes] = {}
        try:
            for i in range(0, len(full), _CHUNK):
                for key, value in zip(wanted[i:i + _CHUNK], self._mget(full[i:i + _CHUNK]), strict=True):
                    if value is not None:
                        out[key] = bytes(value)
        except _ERRORS as exc:
            raise self._fail("batch read", exc) from None
        return out

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        if self.wait:
            self.put_many({key: value}, ttl=ttl)
            return
        k = self._k(key)
        try:
            self.client.set(k, value, px=self._px(ttl))
        except _ERRORS as exc:
            raise self._fail(f"write of {key!r}", exc) from None

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        pairs = [(self._k(k), v) for k, v in items.items()]
        if not pairs:
            return
        px = self._px(ttl)
        try:
            if self.wait:
                self._put_and_wait(pairs, px)
                return
            for i in range(0, len(pairs), _CHUNK):
                pipe = self.client.pipeline(transaction=False)
                for k, v in pairs[i:i + _CHUNK]:
                    pipe.set(k, v, px=px)
                pipe.execute()
        except _ERRORS as exc:
            raise self._fail("batch write", exc) from None

    def _put_and_wait(self, pairs: list[tuple[str, bytes]], px: int | None) -> None:
        # SET and WAIT on the same connection: WAIT counts replicas that have *this connection's* writes.
        pipe = self.client.pipeline(transaction=False)
        for k, v in pairs:
            pipe.set(k, v, px=px)
        pipe.execute_command("WAIT", self.wait, self.wait_timeout)
        acked = pipe.execute()[-1]
        if int(acked) < self.wait:
            raise KVUnavailable(
                f"{redact_url(self.url)}: write reached {acked} of {self.wait} replicas in "
                f"{self.wait_timeout} ms; it may not survive a failover, retry when replicas are back"
            )

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Iterable[str]) -> None:
        full = [self._k(k) for k in keys]
        try:
            for i in range(0, len(full), _CHUNK):
                self.client.unlink(*full[i:i + _CHUNK])
        except _ERRORS as exc:
            raise self._fail("batch delete", exc) from None

    def exists(self, key: str) -> bool:
        k = self._k(key)
        try:
            return bool(self.client.exists(k))
        except _ERRORS as exc:
            raise self._fail(f"exists of {key!r}", exc) from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        """SCAN (never KEYS, which blocks the server); order is not defined."""
        pattern = _glob_escape(self.prefix + prefix) + "*"
        cut = len(self.prefix)
        try:
            for raw in self.client.scan_iter(match=pattern, count=1000):
                yield (raw.decode() if isinstance(raw, bytes) else raw)[cut:]
        except _ERRORS as exc:
            raise self._fail("key listing", exc) from None

    def close(self) -> None:
        try:
            self.client.close()
        except _ERRORS:
            pass


class RedisClusterStore(RedisStore):
    """Redis Cluster: keys spread over slots; batches grouped per node by redis-py."""

    cluster = True

    def _make_client(self, parsed: Any, query: dict[str, str], timeout: float) -> Any:
        hosts = parsed.netloc.rpartition("@")[2]
        password = unquote(parsed.password) if parsed.password else None
        username = unquote(parsed.username) if parsed.username else None
        nodes: list[ClusterNode] = []
        for part in hosts.split(","):
            host, _, port = part.strip().rpartition(":")
            if not host:
                host, port = port, "6379"
            nodes.append(ClusterNode(host.strip("[]"), int(port)))
        if not nodes:
            raise KVError(f"{redact_url(self.url)}: no nodes; use redis+cluster://host:port,host:port")
        try:
            return RedisCluster(
                startup_nodes=nodes,
                username=username,
                password=password,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                require_full_coverage=False,
            )
        except _ERRORS as exc:
            raise self._fail("connect", exc) from None

    def _mget(self, keys: list[str]) -> list[Any]:
        return list(self.client.mget_nonatomic(keys))

    def _put_and_wait(self, pairs: list[tuple[str, bytes]], px: int | None) -> None:
        by_node: dict[str, tuple[Any, list[tuple[str, bytes]]]] = {}
        groups: defaultdict[str, list[tuple[str, bytes]]] = defaultdict(list)
        for k, v in pairs:
            node = self.client.get_node_from_key(k)
            by_node[node.name] = (node, groups[node.name])
            groups[node.name].append((k, v))
        try:
            for node, items in by_node.values():
                # the node's own client: SET and WAIT must share a connection (see the module doc)
                pipe = node.redis_connection.pipeline(transaction=False)
                for k, v in items:
                    pipe.set(k, v, px=px)
                pipe.execute_command("WAIT", self.wait, self.wait_timeout)
                acked = pipe.execute()[-1]
                if int(acked) < self.wait:
                    raise KVUnavailable(
                        f"{redact_url(self.url)}: write reached {acked} of {self.wait} replicas of "
                        f"{node.name} in {self.wait_timeout} ms; retry when the shard has a replica again"
                    )
        except (rex.ConnectionError, rex.TimeoutError, rex.ResponseError):
            # a master died or slots moved (MOVED/ASK/CLUSTERDOWN): refresh the slot map for the retry
            try:
                self.client.nodes_manager.initialize()
            except _ERRORS:
                pass
            raise

    def keys(self, prefix: str = "") -> Iterator[str]:
        """SCAN every primary; a key is listed once even if slots move during the scan."""
        pattern = _glob_escape(self.prefix + prefix) + "*"
        cut = len(self.prefix)
        seen: set[str] = set()
        try:
            for node in self.client.get_primaries():
                conn = node.redis_connection
                for raw in conn.scan_iter(match=pattern, count=1000):
                    key = (raw.decode() if isinstance(raw, bytes) else raw)[cut:]
                    if key not in seen:
                        seen.add(key)
                        yield key
        except _ERRORS as exc:
            raise self._fail("key listing", exc) from None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
