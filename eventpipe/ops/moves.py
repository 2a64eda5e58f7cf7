"""Executing backlog moves with dynamic shovels (``ops rebalance``, ``ops drain --node``), and the
other operator actions on a backlog: draining a queue and purging one.

Every move is a shovel (``eventpipe.queues.shovel``) with ``ack-mode: on-confirm`` (a message
leaves its source only after the destination confirmed it: a crash duplicates, never loses) and
``src-delete-after: N`` (it deletes itself after N messages). A shovel waiting for messages that
local consumers took meanwhile would never finish, so the wait also ends when the source queue is
empty; the shovel is then cancelled (unacked messages it held go back to the source and are picked
up by the next pass).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika

from eventpipe.queues import shovel
from eventpipe.queues.declare import DLQ_ARGS, WORK_ARGS, delay_args, on_fresh_channel
from eventpipe.queues.management import BrokerNode, ManagementError
from eventpipe.queues.nodes import connect, queue_depth
from eventpipe.queues.topology import Topology

from .nodes import OpsError, find_node, nodes_for
from .plan import Load, Move
from eventpipe.metadata.flags import CACHE_S, close_queue, load_drained_nodes, mark_drained

log = logging.getLogger("eventpipe.ops")

Progress = Callable[[int], None]  # messages moved since the last call


@dataclass
class MoveResult:
    queue: str
    src: str
    dst: str
    planned: int
    moved: int
    error: str | None = None


@dataclass
class DrainResult:
    node: str
    moved: int
    passes: int
    elapsed_s: float
    left: dict[str, int] = field(default_factory=dict)
    moves: list[MoveResult] = field(default_factory=list)


def ensure_queue(node: BrokerNode, topology: Topology, physical: str) -> None:
    """Declare ``physical`` on ``node`` exactly as eventpipe declares it everywhere (a shovel
    publishing to a missing queue would drop messages as unroutable, yet confirmed)."""
    kind = topology.classify(physical)
    args = {"work": WORK_ARGS, "dlq": DLQ_ARGS}.get(kind.kind)
    if kind.kind == "delay" and kind.delay_ms is not None:
        args = delay_args(topology, kind.logical, kind.delay_ms)
    if args is None:
        raise OpsError(f"{physical!r} is not an eventpipe queue of prefix {topology.prefix!r}")
    conn = connect(node.amqp_url)
    try:
        conn.channel().queue_declare(physical, durable=True, arguments=args)
    finally:
        conn.close()


def depth(node: BrokerNode, queue: str) -> int:
    conn = connect(node.amqp_url)
    try:
        return queue_depth(conn, queue) or 0
    finally:
        conn.close()


def run_shovel(src: BrokerNode, dst: BrokerNode, queue: str, count: int, topology: Topology, *,
               timeout_s: float = 600.0, on_progress: Progress | None = None) -> int:
    """Move up to ``count`` ready messages of ``queue`` from ``src`` to ``dst``; returns how many
    left the source (by exact depth), which is < ``count`` when local consumers took some."""
    ensure_queue(dst, topology, queue)
    before_src = depth(src, queue)
    if before_src == 0:
        return 0
    count = min(count, before_src)
    before_dst = depth(dst, queue)
    handle = shovel.move_backlog(src, dst, queue, count)
    deadline = time.monotonic() + timeout_s
    reported = 0
    ever_running = False
    try:
        while True:
            state = shovel.shovel_state(handle)
            now_dst = depth(dst, queue)
            arrived = max(0, now_dst - before_dst)
            if on_progress is not None and arrived > reported:
                on_progress(min(arrived, count) - reported)
                reported = min(arrived, count)
            if state is None:
                break
            # RabbitMQ restarts a broken shovel forever: its state is watched, never waited out
            ever_running = ever_running or str(state.get("state")) == "running" or arrived > 0
            problem = shovel.shovel_problem(handle, state, ever_running=ever_running)
            if problem is not None:
                raise OpsError(problem)
            if depth(src, queue) == 0:
                # the source is empty: either the shovel took its count and is about to delete
                # itself (confirms in flight), or local consumers took some and it would wait
                # forever. Give it a few seconds to finish, then cancel.
                settle = time.monotonic() + 5.0
                while state is not None and time.monotonic() < settle:
                    time.sleep(0.2)
                    state = shovel.shovel_state(handle)
                if state is not None:
                    shovel.cancel(handle)
                break
            if time.monotonic() > deadline:
                shovel.cancel(handle)
                raise OpsError(f"moving {count} of {queue} {src.host_port} -> {dst.host_port} did not finish in {timeout_s:.0f}s")
            time.sleep(0.2)
    except BaseException:
        try:
            shovel.cancel(handle)
        except Exception:  # noqa: BLE001, S110 - the original error matters more than the cleanup
            pass
        raise
    # a finished shovel moved exactly ``count`` (confirmed); a cancelled one what reached dst
    # (a lower bound when consumers on dst took some meanwhile)
    moved = count if state is None else min(count, max(0, depth(dst, queue) - before_dst))
    if on_progress is not None and moved > reported:
        on_progress(moved - reported)
    return moved


def execute_plan(nodes: Sequence[BrokerNode], moves: Sequence[Move], topology: Topology, *,
                 on_progress: Progress | None = None, timeout_s: float = 600.0) -> list[MoveResult]:
    """Run each move (one shovel each, one after another: two cores, and each takes ~1 s per 10k)."""
    results = []
    for m in moves:
        src, dst = find_node(list(nodes), m.src), find_node(list(nodes), m.dst)
        try:
            moved = run_shovel(src, dst, topology.queue(m.queue), m.count, topology,
                               on_progress=on_progress, timeout_s=timeout_s)
            results.append(MoveResult(m.queue, m.src, m.dst, m.count, moved))
        except (OpsError, ManagementError, shovel.ShovelError, pika.exceptions.AMQPError, OSError) as exc:
            results.append(MoveResult(m.queue, m.src, m.dst, m.count, 0, error=str(exc)))
    return results


def loads(nodes: Sequence[BrokerNode], topology: Topology, logical: Sequence[str]) -> tuple[list[Load], list[str]]:
    """Exact ready counts and consumer counts of every work queue on every reachable node."""
    out: list[Load] = []
    errors: list[str] = []
    for node in nodes:
        try:
            conn = connect(node.amqp_url)
        except (pika.exceptions.AMQPError, OSError) as exc:
            errors.append(f"{node.host_port}: unreachable ({type(exc).__name__})")
            continue
        try:
            try:
                with node.client(timeout=5.0) as mc:
                    names = {q.name for q in mc.queues(node.vhost) if topology.classify(q.name).kind == "work"}
            except ManagementError as exc:
                errors.append(f"{node.host_port}: {exc}")
                names = {topology.queue(q) for q in logical}  # probe the registered ones instead
            for name in sorted(names):
                ok = on_fresh_channel(conn, lambda ch, name=name: ch.queue_declare(name, passive=True))
                if ok is not None:
                    out.append(Load(topology.logical(name), node.host_port, int(ok.method.message_count), int(ok.method.consumer_count)))
        finally:
            conn.close()
    return out, errors


def node_backlog(node: BrokerNode, topology: Topology, logical: Sequence[str], *, include_delay: bool = True) -> dict[str, int]:
    """Ready messages per eventpipe work (and delay) queue on one node, exact."""
    names: set[str] = set()
    with node.client(timeout=10.0) as mc:  # lists every queue, declared by anyone
        for q in mc.queues(node.vhost):
            kind = topology.classify(q.name).kind
            if kind == "work" or (include_delay and kind == "delay"):
                names.add(q.name)
    conn = connect(node.amqp_url)
    try:
        out = {}
        for name in sorted(names):
            n = queue_depth(conn, name)
            if n is not None:
                out[name] = n
        return out
    finally:
        conn.close()


def drain_node(
    nodes: Sequence[BrokerNode],
    name: str,
    topology: Topology,
    logical: Sequence[str],
    *,
    excluded: set[str],
    chunk: int = 5000,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 3600.0,
) -> DrainResult:
    """Move every ready message of the node's eventpipe work and delay queues to the other nodes,
    in chunks of ``chunk`` spread round-robin over them, until a whole pass finds it empty.

    Delay queues go to the same delay queue on the destination (declared with the same TTL): the
    message waits its full delay again there, which keeps "never before the requested delay".
    ``on_progress(moved_total, remaining_estimate)`` is called as messages arrive.
    """
    t0 = time.monotonic()
    src = find_node(list(nodes), name)
    targets = [n for n in nodes if n.host_port != name and n.host_port not in excluded]
    if not targets:
        raise OpsError(f"no other node to move {name}'s backlog to: every other node is drained or none is configured")
    result = DrainResult(node=name, moved=0, passes=0, elapsed_s=0.0)
    turn = 0
    failures: list[str] = []  # consecutive failed moves; reset by any move that moved something
    while True:
        if time.monotonic() - t0 > timeout_s:
            raise OpsError(f"drain of {name} not finished after {timeout_s:.0f}s; {result.moved} moved so far")
        backlog = node_backlog(src, topology, logical)
        remaining = sum(backlog.values())
        if on_progress is not None:
            on_progress(result.moved, remaining)
        if remaining == 0:
            break
        result.passes += 1
        for queue, count in backlog.items():
            while count > 0:
                dst = targets[turn % len(targets)]
                turn += 1
                take = min(count, chunk)

                def step(n: int, remaining: int = remaining) -> None:
                    result.moved += n
                    if on_progress is not None:
                        on_progress(result.moved, max(0, remaining - result.moved))

                try:
                    moved = run_shovel(src, dst, queue, take, topology, on_progress=step)
                except (OpsError, ManagementError, shovel.ShovelError) as exc:
                    log.warning("move of %s to %s failed (%s); trying the next node", queue, dst.host_port, exc)
                    result.moves.append(MoveResult(topology.logical(queue), name, dst.host_port, take, 0, str(exc)))
                    failures.append(f"to {dst.host_port}: {exc}")
                    if len(failures) >= len(targets):  # every destination failed in a row: stop now
                        raise OpsError(f"drain of {name} failed, {result.moved} moved so far:\n  "
                                       + "\n  ".join(failures[-len(targets):])) from None
                    break  # re-read the backlog and continue with the next node
                if moved:
                    failures.clear()
                result.moves.append(MoveResult(topology.logical(queue), name, dst.host_port, take, moved))
                if moved == 0:
                    break  # consumers emptied it, or a failure: re-read the backlog
                count -= moved
    result.elapsed_s = time.monotonic() - t0
    result.left = {topology.logical(q): n for q, n in node_backlog(src, topology, logical).items() if n}
    return result


def wait_empty(conns: Sequence[BrokerNode], queue: str, *, on_progress: Callable[[int], None] | None = None,
               timeout_s: float = 3600.0, poll_s: float = 1.0, include_unacked: bool = True) -> int:
    """Wait until ``queue`` (physical) has no ready (and, via management, no unacked) message on
    any node; returns the seconds waited. ``ops drain --queue`` uses it."""
    t0 = time.monotonic()
    quiet = 0
    while True:
        total = 0
        for node in conns:
            try:
                total += depth(node, queue)
                if include_unacked:
                    with node.client(timeout=5.0) as mc:
                        st = mc.queue(queue, node.vhost)
                        total += st.messages_unacked if st else 0
            except (pika.exceptions.AMQPError, OSError, ManagementError):
                total += 1  # unknown: not empty yet
        if on_progress is not None:
            on_progress(total)
        # management's unacked count lags by the statistics interval (~1 s): trust "empty" only
        # when two looks ``poll_s`` apart agree
        quiet = quiet + 1 if total == 0 else 0
        if quiet >= 2:
            return int(time.monotonic() - t0)
        if time.monotonic() - t0 > timeout_s:
            raise OpsError(f"{queue} still holds {total} messages after {timeout_s:.0f}s")
        time.sleep(poll_s)


# ---- operator actions: what `eventpipe ops drain|purge` do, as plain functions ------------------
def check_queue(rt: Any, queue: str) -> None:
    """Raise :class:`OpsError` unless ``queue`` is a logical queue of some declared task."""
    known = rt.registry.queues()
    if queue not in known:
        raise OpsError(f"no queue {queue!r}; declared queues: {', '.join(known)}")


def drain_node_now(rt: Any, name: str, *, chunk: int = 5000, timeout_s: float = 3600.0,
                   on_progress: Callable[[int, int], None] | None = None) -> DrainResult:
    """Empty node ``name``: mark it drained (publishers stop choosing it), wait until every
    publisher's cached copy of that flag has expired, then move its whole backlog to the other
    nodes that are not drained. A failure leaves the node drained; calling again continues."""
    nodes = nodes_for(rt.settings)
    name = find_node(nodes, name).host_port  # the canonical HOST:PORT publishers compare with
    mark_drained(rt.db, name, reason="eventpipe ops drain")
    time.sleep(CACHE_S + 0.5)  # every publisher's cached flag has expired: no new work lands there
    excluded = load_drained_nodes(rt.db) - {name}
    try:
        return drain_node(nodes, name, rt.topology, rt.registry.queues(), excluded=excluded, chunk=chunk,
                          on_progress=on_progress, timeout_s=timeout_s)
    except (OpsError, ManagementError, pika.exceptions.AMQPError, OSError) as exc:
        # e.g. the node is down: the flag is set (publishers avoid it); its messages wait there
        raise OpsError(
            f"{type(exc).__name__}: {exc} (the node stays drained; rerun to continue moving its backlog, "
            f"or `eventpipe ops undrain --node {name}`)"
        ) from exc


def drain_queue_now(rt: Any, queue: str, *, timeout_s: float = 3600.0,
                    on_progress: Callable[[int], None] | None = None) -> float:
    """Close logical ``queue`` to new work and wait until it is empty on every node; returns the
    seconds waited. The embedded broker's queues live in this process, so they are run dry here."""
    check_queue(rt, queue)
    close_queue(rt.db, queue, reason="eventpipe ops drain --queue")
    t0 = time.monotonic()
    rt.broker.run_until_idle()  # an in-process broker's queue is run dry here
    if rt.broker.in_process:
        return time.monotonic() - t0
    try:
        return float(wait_empty(nodes_for(rt.settings), rt.topology.queue(queue), timeout_s=timeout_s,
                                on_progress=on_progress))
    except OpsError as exc:
        raise OpsError(f"{exc} (the queue stays closed; `eventpipe ops undrain --queue {queue}` reopens it)") from exc


@dataclass
class PurgeResult:
    queue: str
    per_node: dict[str, int | None] = field(default_factory=dict)  # None: could not purge there
    errors: list[str] = field(default_factory=list)

    @property
    def purged(self) -> int:
        return sum(v for v in self.per_node.values() if v)

    def to_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "purged": self.purged, "per_node": self.per_node, "errors": self.errors}


def purge_queue(rt: Any, queue: str) -> PurgeResult:
    """Delete every ready message of logical ``queue`` on every node (its dead letters stay).
    A node that cannot be reached is reported in ``errors`` and the others are still purged."""
    check_queue(rt, queue)
    physical = rt.topology.queue(queue)
    result = PurgeResult(queue)
    for node, count in rt.broker.purge(physical).items():
        result.per_node[node] = count
        if count is None:
            result.errors.append(f"{node}: unreachable or refused the purge")
    return result
