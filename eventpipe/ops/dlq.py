"""Dead letters across every node (RabbitMQ) or in SQL (embedded): list, show, replay, purge.

Reading a DLQ never loses a message: every message is fetched with ``basic.get`` *without* ack on
one channel and stays unacked until the channel closes, which returns it to the queue in its
original order. Replay publishes a matching message to its work queue on the same node with
publisher confirms, and acks the DLQ copy only after the confirm (a crash in between duplicates,
never loses: tasks are idempotent). Purge acks matching ones. Non-matching messages stay.

Replayed messages get their retry history cleared (``retries``, ``failures``, ``last_error``), so a
replay has the full retry budget again, and ``options.replayed`` counts replays.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika

from eventpipe.queues.declare import WORK_ARGS
from eventpipe.queues.management import BrokerNode, ManagementError
from eventpipe.queues.topology import Topology

from eventpipe.queues.nodes import connect

from .nodes import OpsError

H = "x-eventpipe-"
RESET_OPTIONS = ("retries", "failures", "last_error", "last_traceback", "traceback", "_eventpipe_requeue")


@dataclass
class Filter:
    queue: str | None = None  # logical name or glob
    task: str | None = None  # task name or glob
    since: float | None = None  # epoch seconds: failed at or after
    ident: str | None = None  # message id, or index in the listing

    def matches(self, d: DeadLetterView) -> bool:
        if self.queue and not fnmatch.fnmatchcase(d.queue, self.queue):
            return False
        if self.task and not fnmatch.fnmatchcase(d.task, self.task):
            return False
        if self.since is not None and (d.failed_at or 0) < self.since:
            return False
        if self.ident is not None:
            return self.ident == d.message_id or self.ident == str(d.index)
        return True


@dataclass
class DeadLetterView:
    index: int
    node: str  # HOST:PORT, or "sql" in embedded mode
    queue: str
    task: str
    message_id: str
    reason: str
    attempts: int
    failed_at: float | None
    kwargs: dict[str, Any] | None = None
    traceback: str = ""
    failure_times: list[float] = field(default_factory=list)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["failed_at"] = _iso(self.failed_at)
        d["failure_times"] = [_iso(t) for t in self.failure_times]
        if not full:
            d.pop("traceback")
            d.pop("failure_times")
            d.pop("kwargs")
        return d


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_since(text: str | None) -> float | None:
    """``--since``: a duration back from now (``30m``, ``2h``, ``1d``) or an ISO time (UTC if naive)."""
    if not text:
        return None
    from eventpipe.schedules.spec import ScheduleError, parse_duration

    try:
        return time.time() - parse_duration(text, what="--since")
    except ScheduleError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise OpsError(f"--since: expected a duration like 30m, 2h, 1d or an ISO time, got {text!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _view(index: int, node: str, headers: dict[str, Any], body: bytes, fallback_queue: str) -> DeadLetterView:
    msg: dict[str, Any] = {}
    try:
        decoded = json.loads(body)
        msg = decoded if isinstance(decoded, dict) else {}
    except (ValueError, UnicodeDecodeError):
        msg = {}

    def b2s(v: Any) -> str:
        return v.decode(errors="replace") if isinstance(v, bytes) else str(v)

    failed_ms = headers.get(f"{H}failed-at-ms")
    return DeadLetterView(
        index=index, node=node,
        queue=b2s(headers.get(f"{H}queue", fallback_queue)),
        task=b2s(headers.get(f"{H}task", msg.get("actor_name", "<unknown>"))),
        message_id=str(msg.get("message_id", "")),
        reason=b2s(headers.get(f"{H}reason", "")),
        attempts=int(headers.get(f"{H}attempts", 0) or 0),
        failed_at=float(failed_ms) / 1000 if failed_ms is not None else None,
        kwargs=msg.get("kwargs") if isinstance(msg.get("kwargs"), dict) else None,
        traceback=b2s(headers.get(f"{H}traceback", "")),
        failure_times=[float(t) / 1000 for t in (headers.get(f"{H}failure-times-ms") or [])],
    )


def dlq_names(node: BrokerNode, topology: Topology, logical: Sequence[str]) -> list[str]:
    """Every DLQ of this deployment on ``node`` (management list; the registered queues' DLQs
    when the management API is down)."""
    try:
        with node.client(timeout=5.0) as mc:
            return sorted(q.name for q in mc.queues(node.vhost) if topology.classify(q.name).kind == "dlq")
    except ManagementError:
        return sorted(topology.dead_letter(q) for q in logical)


def _replay_body(body: bytes) -> bytes:
    try:
        msg = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body  # undecodable: give it back as it was
    if not isinstance(msg, dict):
        return body
    opts = dict(msg.get("options") or {})
    for key in RESET_OPTIONS:
        opts.pop(key, None)
    opts["replayed"] = int(opts.get("replayed", 0)) + 1
    msg["options"] = opts
    return json.dumps(msg, separators=(",", ":")).encode()


@dataclass
class Outcome:
    matched: int = 0
    replayed: int = 0
    purged: int = 0
    kept: int = 0
    errors: list[str] = field(default_factory=list)
    items: list[DeadLetterView] = field(default_factory=list)

    def to_dict(self, *, items: bool = False, full: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"matched": self.matched, "replayed": self.replayed, "purged": self.purged,
                             "kept": self.kept, "errors": self.errors}
        if items:
            d["dead_letters"] = [i.to_dict(full=full) for i in self.items]
        return d


def rabbit_walk(nodes: Sequence[BrokerNode], topology: Topology, logical: Sequence[str], flt: Filter, *,
                action: str = "list", limit: int = 100_000) -> Outcome:
    """Read every DLQ of every node; ``action`` is ``list`` (keep all), ``replay`` or ``purge``
    (for matching ones). Index numbers count every dead letter, matching or not, in node order, so
    an index from ``list`` names the same message in ``show``/``replay`` while nothing changed."""
    out = Outcome()
    index = 0
    for node in nodes:
        try:
            conn = connect(node.amqp_url, timeout=10.0)
        except (pika.exceptions.AMQPError, OSError) as exc:
            out.errors.append(f"{node.host_port}: unreachable ({type(exc).__name__})")
            continue
        try:
            for dlq in dlq_names(node, topology, logical):
                index = _walk_queue(conn, node, topology, dlq, flt, action, out, index, limit)
        finally:
            try:
                conn.close()  # anything still unacked goes back, in order
            except Exception:  # noqa: BLE001, S110 - a dead connection returns them just the same
                pass
    if action != "list":
        out.kept = out.matched - out.replayed - out.purged  # matched but left in place (errors)
    return out


def _walk_queue(conn: pika.BlockingConnection, node: BrokerNode, topology: Topology, dlq: str, flt: Filter,
                action: str, out: Outcome, index: int, limit: int) -> int:
    reader = conn.channel()
    try:
        total = reader.queue_declare(dlq, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return index
    publisher = None
    declared: set[str] = set()
    if action == "replay":
        publisher = conn.channel()
        publisher.confirm_delivery()
    try:
        for _ in range(min(total, limit)):
            method, props, body = reader.basic_get(dlq, auto_ack=False)
            if method is None:
                break
            view = _view(index, node.host_port, dict(props.headers or {}), body, topology.classify(dlq).logical)
            index += 1
            if not flt.matches(view):
                continue
            out.matched += 1
            out.items.append(view)
            if action == "replay":
                assert publisher is not None
                target = topology.queue(view.queue)
                if target not in declared:  # once per work queue: a replay must not be unroutable
                    publisher.queue_declare(target, durable=True, arguments=WORK_ARGS)
                    declared.add(target)
                try:
                    publisher.basic_publish(
                        "", target, _replay_body(body),
                        pika.BasicProperties(delivery_mode=2, message_id=view.message_id or None,
                                             timestamp=int(time.time()), content_type="application/json"),
                        mandatory=True,
                    )
                except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                    out.errors.append(f"{node.host_port}: replay of {view.message_id or view.index} not confirmed: {exc}")
                    continue  # stays in the DLQ
                reader.basic_ack(method.delivery_tag)
                out.replayed += 1
            elif action == "purge":
                reader.basic_ack(method.delivery_tag)
                out.purged += 1
    finally:
        for ch in (reader, publisher):
            if ch is not None and ch.is_open:
                ch.close()  # unacked (kept) messages return to the DLQ in their order
    return index


# Embedded mode: the dead_letters table ------------------------------------------------------------
def _sql_rows(rt: Any) -> Iterator[Any]:
    from sqlalchemy import select

    from eventpipe.metadata.models import DeadLetter

    with rt.db.session() as s:
        yield from s.scalars(select(DeadLetter).order_by(DeadLetter.id))


def sql_walk(rt: Any, flt: Filter, *, action: str = "list") -> Outcome:
    """The embedded broker's dead letters. Index = the row id. Replay re-enqueues through the
    runtime (in embedded mode the command then runs the work in-process) and deletes the row."""
    from sqlalchemy import delete

    from eventpipe.metadata.models import DeadLetter

    out = Outcome()
    rows = list(_sql_rows(rt))
    chosen = []
    for r in rows:
        failed_at = r.failed_at.replace(tzinfo=UTC).timestamp()
        msg = r.message or {}
        view = DeadLetterView(
            index=r.id, node="sql", queue=r.queue, task=r.task, message_id=r.message_id, reason=r.reason,
            attempts=r.attempts, failed_at=failed_at, kwargs=msg.get("kwargs"), traceback=r.traceback or "",
            failure_times=[float(t) for t in (msg.get("options") or {}).get("failures", [])],
        )
        if flt.matches(view):
            out.matched += 1
            out.items.append(view)
            chosen.append(r)
    if action == "replay":
        for r in chosen:
            try:
                rt.enqueue(r.task, **((r.message or {}).get("kwargs") or {}))
            except Exception as exc:  # noqa: BLE001 - report and keep the row
                out.errors.append(f"replay of {r.message_id}: {exc}")
                continue
            with rt.db.session() as s:
                s.execute(delete(DeadLetter).where(DeadLetter.id == r.id))
            out.replayed += 1
    elif action == "purge":
        ids = [r.id for r in chosen]
        if ids:
            with rt.db.session() as s:
                s.execute(delete(DeadLetter).where(DeadLetter.id.in_(ids)))
        out.purged = len(ids)
    return out


def walk(rt: Any, flt: Filter, *, action: str = "list", limit: int = 100_000) -> Outcome:
    """List, replay or purge the dead letters matching ``flt`` wherever this deployment keeps them:
    the ``dead_letters`` table in the embedded mode, every node's DLQs with RabbitMQ. Replayed
    work in the embedded mode runs here and now, or it would vanish with the process. ``limit``
    bounds the messages read per DLQ (the console's listing reads the first ones only)."""
    if rt.broker.in_process:  # its dead letters are kept in SQL, since its queues die with the process
        result = sql_walk(rt, flt, action=action)
        if action == "replay" and result.replayed:
            rt.broker.run_until_idle()
        return result
    from .nodes import nodes_for

    return rabbit_walk(nodes_for(rt.settings), rt.topology, rt.registry.queues(), flt, action=action, limit=limit)
