"""Move a backlog from one node to another with a dynamic shovel (``ops rebalance`` / ``ops drain``).

Why shovels next to federation: a federation link pulls only for a local consumer with spare
prefetch, one hop at a time. It cannot empty a node whose consumers are all gone, nor push work
towards a node that has none yet. A dynamic shovel moves a fixed number of messages now:

* ``ack-mode: on-confirm``: a message leaves the source only after the destination confirmed it,
  so a crash mid-move duplicates at worst, never loses (every task is idempotent, so a duplicate
  is harmless);
* ``src-delete-after: <count>``: the shovel deletes itself after ``count`` messages, so "done"
  is simply "the shovel is gone" (HTTP 404);
* ``src-consumer-args: {"x-priority": -1}``: on a source that still has consumers, the shovel gets
  only what they cannot take (RabbitMQ serves higher-priority consumers first), so a rebalance never
  steals work from busy local workers.

The shovel is defined on the destination node by default: the pulling side does the work, and
the node that is behind is spared the extra load.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from eventpipe.errors import EventpipeError

from .management import BrokerNode, ManagementClient, NodeLike
from .nodes import DEFAULT_VHOST, redact_url

Count = int | Literal["queue-length"]


class ShovelError(EventpipeError, RuntimeError):
    """The shovel could not be created, failed while moving, or did not finish in time."""


@dataclass(frozen=True)
class ShovelHandle:
    """Where a started shovel lives, enough to poll or cancel it later (also from another process)."""

    name: str
    management_url: str  # with credentials; never printed (see __repr__/to_dict)
    vhost: str
    src: str
    dst: str
    src_queue: str
    dst_queue: str
    count: Count
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["management_url"] = redact_url(self.management_url)
        return d

    def __repr__(self) -> str:
        return f"ShovelHandle({self.name}: {self.src}/{self.src_queue} -> {self.dst}/{self.dst_queue}, {self.count})"


@dataclass(frozen=True)
class ShovelProgress:
    name: str
    state: str  # starting | running | terminated | done
    src_messages: int | None  # from management stats: lag by the statistics interval
    dst_messages: int | None
    elapsed_s: float


@dataclass(frozen=True)
class ShovelResult:
    name: str
    done: bool
    elapsed_s: float
    count: Count


def _node(n: NodeLike | BrokerNode) -> BrokerNode:
    return n if isinstance(n, BrokerNode) else BrokerNode(n.amqp_url, n.management_url)


def shovel_value(src: BrokerNode, dst: BrokerNode, src_queue: str, dst_queue: str, count: Count,
                 *, prefetch: int = 1000) -> dict[str, Any]:
    return {
        "src-protocol": "amqp091",
        "src-uri": src.amqp_url,
        "src-queue": src_queue,
        "src-delete-after": count,
        "src-prefetch-count": prefetch,
        "src-consumer-args": {"x-priority": -1},
        "dest-protocol": "amqp091",
        "dest-uri": dst.amqp_url,
        "dest-queue": dst_queue,
        "dest-add-forward-headers": False,
        "ack-mode": "on-confirm",
    }


def move_backlog(
    src_node: NodeLike | BrokerNode,
    dst_node: NodeLike | BrokerNode,
    queue: str,
    count: Count,
    *,
    name: str | None = None,
    dst_queue: str | None = None,
    run_on: Literal["src", "dst"] = "dst",
    prefetch: int = 1000,
) -> ShovelHandle:
    """Start moving ``count`` messages (or ``"queue-length"``: what is there now) of ``queue``.

    ``queue`` is the physical name (``Topology.queue(logical)``). The destination queue must already
    exist (``eventpipe federation setup`` declares it everywhere): a shovel publishing to a missing
    queue would have its messages dropped as unroutable, yet confirmed.
    """
    src, dst = _node(src_node), _node(dst_node)
    dst_queue = dst_queue or queue
    if isinstance(count, int) and count <= 0:
        raise ValueError("count must be positive (or 'queue-length')")
    if src.host_port == dst.host_port and queue == dst_queue:
        raise ShovelError("source and destination are the same queue on the same node")
    with dst.client() as mc:
        if mc.queue(dst_queue, dst.vhost) is None:
            raise ShovelError(
                f"queue {dst_queue!r} does not exist on {dst.host_port}: run `eventpipe federation setup` "
                "(declares every task queue on every node) first"
            )
    with src.client() as mc:
        if mc.queue(queue, src.vhost) is None:
            raise ShovelError(f"queue {queue!r} does not exist on {src.host_port}")
    name = name or f"eventpipe-move-{queue}-{int(time.time())}-{secrets.token_hex(2)}"
    host = dst if run_on == "dst" else src
    with host.client() as mc:
        mc.put_shovel(name, shovel_value(src, dst, queue, dst_queue, count, prefetch=prefetch), host.vhost)
    return ShovelHandle(
        name=name, management_url=host.management_url, vhost=host.vhost, src=src.host_port, dst=dst.host_port,
        src_queue=queue, dst_queue=dst_queue, count=count, started_at=time.monotonic(),
    )


START_TIMEOUT_S = 10.0  # a shovel not running by then cannot connect (RabbitMQ retries every 5 s)


def shovel_problem(handle: ShovelHandle, st: dict[str, Any] | None, *, ever_running: bool,
                   start_timeout_s: float = START_TIMEOUT_S) -> str | None:
    """Why a shovel is failing, with what to do, or None while it is fine (or done).

    RabbitMQ keeps restarting a broken shovel, so its state alone never says "failed": a
    ``terminated`` state is a failure at once; ``starting`` for longer than ``start_timeout_s``
    (without ever running) means it cannot connect to one of its URIs."""
    if st is None:
        return None
    state = str(st.get("state", "starting"))
    where = f"shovel {handle.name} ({handle.src}/{handle.src_queue} -> {handle.dst}/{handle.dst_queue})"
    if state == "terminated":
        reason = redact_url(str(st.get("reason") or "no reason given")).strip('"')
        return (f"{where} terminated: {reason}; check that the user in EVENTPIPE_BROKER_URLS may read "
                f"{handle.src_queue} on {handle.src} and write to {handle.dst_queue} on {handle.dst}, and that "
                f"both nodes accept connections (the RabbitMQ log of {handle.dst} has the details)")
    if state != "running" and not ever_running and time.monotonic() - handle.started_at > start_timeout_s:
        return (f"{where} still {state} after {start_timeout_s:.0f}s: it cannot connect to {handle.src} or "
                f"{handle.dst}; check that both nodes are up, reachable from {handle.dst}, and that the URLs name "
                "the vhost (amqp://user:pass@host:5672/%2F) and a user with permissions there")
    return None


def shovel_state(handle: ShovelHandle) -> dict[str, Any] | None:
    """The shovel's status from the node running it; None once it deleted itself (done)."""
    with ManagementClient(handle.management_url) as mc:
        return mc.shovel(handle.name, handle.vhost)


def cancel(handle: ShovelHandle) -> bool:
    """Stop and delete the shovel; messages already moved stay moved. True if it still existed."""
    with ManagementClient(handle.management_url) as mc:
        return mc.delete_shovel(handle.name, handle.vhost)


def wait_done(
    handle: ShovelHandle,
    *,
    timeout_s: float = 600.0,
    poll_s: float = 0.5,
    on_progress: Callable[[ShovelProgress], None] | None = None,
    src_management_url: str | None = None,
    dst_management_url: str | None = None,
) -> ShovelResult:
    """Poll until the shovel is gone (404: all ``count`` messages moved) or fails or times out.

    Raises :class:`ShovelError` when the shovel terminates with an error (it is left in place so
    its reason stays visible; :func:`cancel` removes it) or after ``timeout_s`` (still running:
    e.g. fewer than ``count`` messages were there to move). Pass the management URLs of source and
    destination to get queue depths in the progress callback.
    """
    deadline = time.monotonic() + timeout_s
    src_mc = ManagementClient(src_management_url) if src_management_url else None
    dst_mc = ManagementClient(dst_management_url) if dst_management_url else None
    ever_running = False
    try:
        with ManagementClient(handle.management_url) as mc:
            while True:
                st = mc.shovel(handle.name, handle.vhost)
                elapsed = time.monotonic() - handle.started_at
                state = "done" if st is None else str(st.get("state", "starting"))
                if on_progress is not None:
                    on_progress(ShovelProgress(
                        name=handle.name, state=state,
                        src_messages=_depth(src_mc, handle.src_queue, handle.vhost),
                        dst_messages=_depth(dst_mc, handle.dst_queue, handle.vhost),
                        elapsed_s=elapsed,
                    ))
                if st is None:
                    return ShovelResult(handle.name, True, elapsed, handle.count)
                ever_running = ever_running or state == "running"
                problem = shovel_problem(handle, st, ever_running=ever_running)
                if problem is not None:
                    raise ShovelError(f"{problem}; fix the cause, then `cancel` it and retry")
                if time.monotonic() > deadline:
                    raise ShovelError(
                        f"shovel {handle.name} still {state} after {timeout_s:.0f}s: fewer than {handle.count} "
                        f"messages may have been available on {handle.src}; cancel it or keep waiting"
                    )
                time.sleep(poll_s)
    finally:
        for extra in (src_mc, dst_mc):
            if extra is not None:
                extra.close()


def _depth(mc: ManagementClient | None, queue: str, vhost: str) -> int | None:
    if mc is None:
        return None
    try:
        q = mc.queue(queue, vhost)
    except Exception:  # noqa: BLE001 - progress is best effort, the move goes on
        return None
    return q.messages if q is not None else None


__all__ = [
    "ShovelError", "ShovelHandle", "ShovelProgress", "ShovelResult", "cancel", "move_backlog",
    "shovel_problem", "shovel_state", "shovel_value", "wait_done", "DEFAULT_VHOST", "START_TIMEOUT_S",
]
