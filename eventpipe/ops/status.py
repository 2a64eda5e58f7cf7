"""``eventpipe ops status``: backlog, consumers, rates and lag per queue per node, workers, links.

Lag is the age of the oldest *ready* message, from its publish time. It is read with
``basic.get`` (no ack) on a channel of its own, followed by ``basic.reject(requeue=True)``:
a classic queue puts a rejected message back at its original position (the head), so the peek
neither reorders nor drops anything (tests/ops/test_status.py checks both). The only trace it
leaves is the ``redelivered`` flag on that one message, which eventpipe's consumers ignore.

Publish time: the broker stamps ``properties.timestamp`` (whole seconds) at publish; the dramatiq
body carries ``message_timestamp`` in milliseconds (creation). When that falls within the stamped
second it refines the age to the millisecond; otherwise (a re-published retry) the stamp is used.
Counts of ready messages come from a passive declare (exact); unacked, consumers and rates from the
management API (they lag by the statistics interval).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import pika
from sqlalchemy import select

from eventpipe.metadata.db import utcnow
from eventpipe.metadata.models import WorkerHeartbeat
from eventpipe.queues.management import BrokerNode, ManagementError, QueueStats
from eventpipe.queues.nodes import connect
from eventpipe.queues.topology import Topology

from .nodes import nodes_for

WORKER_ALIVE_S = 15.0


@dataclass
class QueueRow:
    queue: str
    node: str
    ready: int | None
    unacked: int | None
    consumers: int | None
    lag_seconds: float | None
    publish_rate: float | None = None
    deliver_rate: float | None = None
    ack_rate: float | None = None
    behind: bool = False
    why: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Report:
    queues: list[QueueRow]
    workers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    lag_threshold_seconds: float
    backlog_threshold: int
    errors: list[str] = field(default_factory=list)

    @property
    def behind(self) -> bool:
        return any(r.behind for r in self.queues) or any(t["behind"] for t in self.totals)

    def to_json(self) -> dict[str, Any]:
        """The contract of ``ops status --json``: exactly these three keys."""
        return {"queues": [asdict(r) for r in self.queues], "workers": self.workers, "links": self.links}


def publish_time(properties: Any, body: bytes) -> float | None:
    """Epoch seconds a message was published (see module docstring); None when unstamped."""
    stamp = getattr(properties, "timestamp", None)
    created: float | None = None
    try:
        ms = json.loads(body).get("message_timestamp")
        created = float(ms) / 1000.0 if ms is not None else None
    except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
        created = None
    if stamp is None:
        return created
    if created is not None and stamp <= created < stamp + 1:
        return created
    return float(stamp)


def peek_oldest(conn: pika.BlockingConnection, queue: str) -> float | None:
    """Publish time of the head message of ``queue`` without consuming it; None when empty."""
    ch = conn.channel()
    try:
        method, properties, body = ch.basic_get(queue, auto_ack=False)
        if method is None:
            return None
        try:
            return publish_time(properties, body)
        finally:
            ch.basic_reject(method.delivery_tag, requeue=True)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if ch.is_open:
            ch.close()


def lag_of(conn: pika.BlockingConnection, queue: str, now: float | None = None) -> float | None:
    t = peek_oldest(conn, queue)
    if t is None:
        return None
    return max(0.0, (now if now is not None else time.time()) - t)


def node_rows(node: BrokerNode, topology: Topology, logical: list[str]) -> list[QueueRow]:
    """One row per work queue on one node (registered queues plus any found on the node)."""
    stats: dict[str, QueueStats] = {}
    mgmt_error: str | None = None
    try:
        with node.client(timeout=5.0) as mc:
            for q in mc.queues(node.vhost):
                if topology.classify(q.name).kind == "work":
                    stats[q.name] = q
    except ManagementError as exc:
        mgmt_error = str(exc)
    # the management API lists every queue; registered names are probed only when it is down
    names = sorted(set(stats) if mgmt_error is None else {topology.queue(q) for q in logical})
    rows: list[QueueRow] = []
    try:
        conn = connect(node.amqp_url)
    except (pika.exceptions.AMQPError, OSError) as exc:
        return [QueueRow(topology.logical(n), node.host_port, None, None, None, None,
                         error=f"AMQP unreachable: {type(exc).__name__} {exc}".strip()) for n in names]
    try:
        for name in names:
            ch = conn.channel()
            declared_consumers: int | None = None
            try:
                ok = ch.queue_declare(name, passive=True).method
                ready: int | None = int(ok.message_count)
                declared_consumers = int(ok.consumer_count)  # exact too; used when management is down
            except pika.exceptions.ChannelClosedByBroker:
                ready = None
            finally:
                if ch.is_open:
                    ch.close()
            if ready is None and name not in stats:
                continue  # not declared on this node: nothing to show
            lag = lag_of(conn, name) if ready else (0.0 if ready == 0 else None)
            st = stats.get(name)
            rows.append(QueueRow(
                queue=topology.logical(name), node=node.host_port,
                ready=ready if ready is not None else (st.messages_ready if st else None),
                unacked=st.messages_unacked if st else None, consumers=st.consumers if st else declared_consumers,
                lag_seconds=round(lag, 3) if lag is not None else None,
                publish_rate=st.publish_rate if st else None, deliver_rate=st.deliver_rate if st else None,
                ack_rate=st.ack_rate if st else None,
                error=mgmt_error,
            ))
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001, S110 - read-only connection: nothing to lose
            pass
    return rows


def mark(rows: list[QueueRow], lag_threshold: float, backlog_threshold: int) -> list[dict[str, Any]]:
    """Flag rows that are behind and build per-queue totals (also flagged). Pure."""
    totals: dict[str, dict[str, Any]] = {}
    for r in rows:
        r.why = []
        if r.lag_seconds is not None and r.lag_seconds > lag_threshold:
            r.why.append(f"lag {r.lag_seconds:.0f}s > {lag_threshold:g}s")
        if r.ready is not None and r.ready > backlog_threshold:
            r.why.append(f"ready {r.ready} > {backlog_threshold}")
        r.behind = bool(r.why)
        t = totals.setdefault(r.queue, {"queue": r.queue, "ready": 0, "unacked": 0, "consumers": 0,
                                        "lag_seconds": None, "nodes": 0, "behind": False})
        t["nodes"] += 1
        t["ready"] += r.ready or 0
        t["unacked"] += r.unacked or 0
        t["consumers"] += r.consumers or 0
        if r.lag_seconds is not None:
            t["lag_seconds"] = max(t["lag_seconds"] or 0.0, r.lag_seconds)
    for t in totals.values():
        t["behind"] = t["ready"] > backlog_threshold or (t["lag_seconds"] or 0) > lag_threshold
    return sorted(totals.values(), key=lambda t: t["queue"])


def alive_workers(db: Any, within_s: float = WORKER_ALIVE_S) -> list[dict[str, Any]]:
    cutoff = utcnow() - timedelta(seconds=within_s)
    with db.session() as s:
        rows = s.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.last_seen >= cutoff).order_by(WorkerHeartbeat.worker_id))
        return [
            {
                "worker_id": w.worker_id, "hostname": w.hostname, "pid": w.pid, "pool": w.pool,
                "queues": list(w.queues or []), "nodes": list(w.nodes or []),
                "started_at": w.started_at.isoformat() + "Z", "last_seen": w.last_seen.isoformat() + "Z",
                "tasks_done": w.tasks_done, "state": w.state,
            }
            for w in rows
        ]


def federation_links(settings: Any, topology: Topology) -> tuple[list[dict[str, Any]], list[str]]:
    from eventpipe.queues import federation
    from eventpipe.queues.management import management_urls_for

    if len(settings.amqp_urls) < 2:
        return [], []
    try:
        result = federation.status(settings.amqp_urls, management_urls_for(settings), topology)
    except (ManagementError, ValueError) as exc:
        return [], [str(exc)]
    links, errors = [], []
    for ns in result.nodes:
        if ns.error:
            errors.append(f"{ns.node}: {ns.error}")
        for link in ns.links:
            links.append({"node": ns.node, "queue": topology.logical(link.queue), "upstream": link.upstream,
                          "status": link.status, "error": link.error})
    return links, errors


def collect(rt: Any) -> Report:
    """Everything ``ops status`` shows. Embedded mode has no broker nodes: workers only."""
    settings = rt.settings
    topology: Topology = rt.topology
    rows: list[QueueRow] = []
    links: list[dict[str, Any]] = []
    errors: list[str] = []
    if not settings.embedded:
        logical = rt.registry.queues()
        for node in nodes_for(settings):
            node_result = node_rows(node, topology, logical)
            rows += node_result
            errors += sorted({f"{r.node}: {r.error}" for r in node_result if r.error})
        links, link_errors = federation_links(settings, topology)
        errors += link_errors
    totals = mark(rows, settings.lag_threshold_seconds, settings.backlog_threshold)
    try:
        workers = alive_workers(rt.db)
    except Exception as exc:  # noqa: BLE001 - status must still show the broker side
        workers, errors = [], [*errors, f"workers: {exc}"]
    rows.sort(key=lambda r: (r.queue, r.node))
    return Report(rows, workers, links, totals, settings.lag_threshold_seconds, settings.backlog_threshold, errors)


def embedded_rows(rt: Any) -> list[QueueRow]:
    """The in-process queues of an embedded runtime (this process only): ready and in-flight counts.
    Other processes' in-process queues are invisible by construction."""
    rows = []
    queues = getattr(rt.broker, "queues", {}) or {}
    for name in sorted(set(queues) | set(rt.queue_names())):
        if ".DQ" in name or ".XQ" in name:  # dramatiq's delay/dead queues of the stub broker
            continue
        q = queues.get(name)
        ready = q.qsize() if q is not None else 0
        in_flight = max(0, q.unfinished_tasks - ready) if q is not None else 0
        rows.append(QueueRow(queue=rt.topology.logical(name), node="embedded", ready=ready, unacked=in_flight,
                             consumers=None, lag_seconds=None))
    return rows
