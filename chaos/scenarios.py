"""The fault scenarios. Each runs traffic through one shared deployment, injects one fault,
heals it, and measures what happened to every accepted event (see ``chaos.load``)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pika
import sqlalchemy as sa

from .load import Traffic, counter_excess, first_flow_after, wait_stored
from .servers import Deployment, worker_children

SETTLE_S = 120.0  # how long stored counts may take to catch up after the traffic stops


@dataclass
class Row:
    scenario: str
    fault: str
    accepted: int = 0
    stored: int = 0
    lost: int = 0
    dup_rows: int = 0
    dup_counts: int | None = 0
    recover_s: float | None = None
    backpressure: int = 0  # 503/429 with Retry-After
    bad: int = 0  # hangs, refused connections, 5xx without Retry-After
    requests: int = 0
    slowest_s: float = 0.0  # the slowest answer a client waited for
    notes: list[str] = field(default_factory=list)


@dataclass
class World:
    """The shared deployment plus its long-running eventpipe processes."""

    dep: Deployment
    engine: sa.Engine
    duration_s: float
    rate: float
    clients: int = 16
    ingest: object = None
    ingest_url: str = ""
    worker: object = None
    next_project: int = 100

    def ensure_running(self, row: Row) -> None:
        if self.ingest is None or self.ingest.poll() is not None:  # type: ignore[attr-defined]
            if self.ingest is not None:
                row.notes.append("ingest had exited and was restarted")
            self.ingest, self.ingest_url = self.dep.ingest()
        if self.worker is None or self.worker.poll() is not None:  # type: ignore[attr-defined]
            if self.worker is not None:
                row.notes.append("worker supervisor had exited and was restarted")
            self.worker = self.dep.spawn("worker", "worker", "--processes", "2", "--threads", "4")

    def project(self) -> tuple[int, str]:
        self.next_project += 1
        return self.next_project, self.dep.project(self.next_project)


def measure(world: World, row: Row, *, inject: Callable[[], None], heal: Callable[[], None],
            inject_at: float, heal_at: float, duration_s: float | None = None) -> Row:
    """Traffic for ``duration_s`` (default ``world.duration_s``); the fault from ``inject_at`` to
    ``heal_at`` seconds."""
    duration_s = max(duration_s or world.duration_s, heal_at + 5)
    world.ensure_running(row)
    pid, key = world.project()
    traffic = Traffic(world.ingest_url, pid, key, rate=world.rate, clients=world.clients, tag=row.scenario)
    t0 = time.monotonic()
    traffic.start()
    try:
        time.sleep(max(0.0, t0 + inject_at - time.monotonic()))
        inject()
        time.sleep(max(0.0, t0 + heal_at - time.monotonic()))
        heal()
        healed = time.monotonic()
        time.sleep(max(0.0, t0 + duration_s - time.monotonic()))
    finally:
        traffic.stop()
    row.recover_s = first_flow_after(traffic, world.engine, pid, healed, 90.0)
    if row.recover_s is None:
        row.notes.append("no event accepted after the heal was stored within 90 s")
    accepted = sorted({s.event_id for s in traffic.accepted()})
    found = wait_stored(world.engine, pid, accepted, SETTLE_S)
    row.accepted = len(accepted)
    row.stored = sum(1 for e in accepted if found.get(e))
    row.lost = row.accepted - row.stored
    row.dup_rows = sum(n - 1 for n in found.values() if n > 1)
    row.dup_counts = counter_excess(world.engine, pid)
    row.backpressure, row.bad, kinds = traffic.client_errors()
    row.requests = len(traffic.results)
    row.slowest_s, slow = traffic.slow(5.0)
    if slow:
        row.notes.append(f"{slow} of {row.requests} answers took longer than 5 s")
    if kinds:
        row.notes.append("client errors: " + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()))
    return row


# R2 ------------------------------------------------------------------------------------------
def r2_worker_kills(world: World) -> Row:
    row = Row("R2", "worker processes killed with -9 every 3 s")
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        rnd = random.Random(2)
        while not stop.wait(3.0):
            kids = worker_children(world.worker)  # type: ignore[arg-type]
            if kids:
                try:
                    os.kill(rnd.choice(kids).pid, signal.SIGKILL)
                    kills[0] += 1
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer, daemon=True)
    measure(world, row, inject=thread.start, heal=stop.set, inject_at=3, heal_at=world.duration_s - 5)
    thread.join(5)
    row.notes.insert(0, f"{kills[0]} kills")
    return row


# R1 ------------------------------------------------------------------------------------------
def r1_node_kill(world: World) -> Row:
    row = Row("R1", "kill -9 of one of three federated RabbitMQ nodes, restarted 20 s later")
    node = world.dep.rabbit[2]

    def heal() -> None:
        node.start()

    measure(world, row, inject=node.kill, heal=heal, inject_at=3, heal_at=23)
    return row


# R3 ------------------------------------------------------------------------------------------
def r3_postgres_restart(world: World) -> Row:
    row = Row("R3", "Postgres (metadata) stopped (immediate) and started 10 s later")
    pg = world.dep.pg
    assert pg is not None

    def heal() -> None:
        pg.start()
        pg.wait_ready()

    measure(world, row, inject=lambda: pg.stop("immediate"), heal=heal, inject_at=3, heal_at=13)
    world.engine.dispose()
    return row


# R4 ------------------------------------------------------------------------------------------
def r4_body_store(world: World) -> Row:
    row = Row("R4", "body store (Redis) unreachable for 30 s (SIGSTOP: connections hang, then SIGCONT)")
    redis = world.dep.redis
    assert redis is not None
    measure(world, row, inject=lambda: os.kill(redis.pid, signal.SIGSTOP),
            heal=lambda: os.kill(redis.pid, signal.SIGCONT), inject_at=3, heal_at=33)
    return row


# R5 ------------------------------------------------------------------------------------------
def r5_partition(world: World) -> Row:
    row = Row("R5", "one node blackholed for 20 s (clients and federation peers reach it through a TCP proxy)")
    proxy = world.dep.proxy
    if proxy is None:
        row.notes.append("needs 3 nodes")
        return row
    measure(world, row, inject=proxy.partition, heal=proxy.heal, inject_at=3, heal_at=23)
    deadline = time.monotonic() + 60
    while True:  # links reconnect every second once the peer answers again
        res = world.dep.cli("federation", "status", "--json", timeout=120)
        if res.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    row.notes.append("federation links all running after the heal" if res.returncode == 0
                     else "federation links NOT all running 60 s after the heal: " + res.stdout[-300:])
    return row


# R6 ------------------------------------------------------------------------------------------
def r6_memory_alarm(world: World) -> Row:
    row = Row("R6", "memory alarm on every RabbitMQ node (high watermark lowered) for 12 s")
    nodes = world.dep.rabbit

    def inject() -> None:
        for n in nodes:
            world.dep.ctl(n, "set_vm_memory_high_watermark", "0.00001")

    def heal() -> None:
        for n in nodes:
            world.dep.ctl(n, "set_vm_memory_high_watermark", "0.15")

    measure(world, row, inject=inject, heal=heal, inject_at=3, heal_at=15)
    return row


# R9 ------------------------------------------------------------------------------------------
def _fuzz_body(rnd: random.Random, event_id: str) -> tuple[bytes, dict[str, str]]:
    valid = b'{"event_id":"%s","message":"fuzz","level":"error"}' % event_id.encode()
    kind = rnd.randrange(7)
    if kind == 0:
        return valid[: rnd.randrange(1, len(valid) - 1)], {}  # truncated JSON
    if kind == 1:
        return os.urandom(rnd.randrange(1, 400)), {}  # random bytes
    if kind == 2:
        return b'{"event_id":"%s","message":"%s"}' % (event_id.encode(), b"x" * 1_100_000), {}  # oversized
    if kind == 3:
        return b'{"event_id":"%s","timestamp":"soon","level":42}' % event_id.encode(), {}  # wrong types
    if kind == 4:
        return b'[1,2,3]', {}
    if kind == 5:
        return valid, {"Content-Encoding": "gzip"}  # claims gzip, is not
    return b'{"event_id":"%s","exception":{"values":"nope"},"tags":7}' % event_id.encode(), {}


def r9_fuzz(world: World) -> Row:
    row = Row("R9", "fuzzed ingest requests (30/s) and malformed queue messages beside valid traffic")
    world.ensure_running(row)
    fpid, fkey = world.project()
    fuzz = Traffic(world.ingest_url, fpid, fkey, rate=30, clients=3, body=_fuzz_body)
    garbage = [0]
    dead_before = _dead_letters(world)
    before_kids = {p.pid for p in worker_children(world.worker)}  # type: ignore[arg-type]

    def inject() -> None:
        fuzz.start()
        garbage[0] = _publish_garbage(world)

    measure(world, row, inject=inject, heal=fuzz.stop, inject_at=2, heal_at=world.duration_s - 3)
    answers: dict[str, int] = {}
    for s in fuzz.results:
        answers[str(s.status)] = answers.get(str(s.status), 0) + 1
    # 200 is right for a malformed part of a JSON object: it is repaired and stored (its accepted
    # count joins the lost/stored check), as the reference system does; anything else must be a 4xx.
    fuzz_bad = sum(n for k, n in answers.items() if not (k == "200" or (k.isdigit() and 400 <= int(k) < 500)))
    row.notes.append(f"fuzz answers: {dict(sorted(answers.items()))} ({fuzz_bad} neither 4xx nor repaired)")
    row.bad += fuzz_bad
    deadline = time.monotonic() + 90
    dead = _dead_letters(world) - dead_before
    while dead < garbage[0] and time.monotonic() < deadline:
        time.sleep(1)
        dead = _dead_letters(world) - dead_before
    row.notes.append(f"{garbage[0]} malformed queue messages published, {dead} in dead-letter queues")
    after_kids = {p.pid for p in worker_children(world.worker)}  # type: ignore[arg-type]
    if before_kids != after_kids:
        row.notes.append(f"worker processes changed during fuzzing: {sorted(before_kids)} -> {sorted(after_kids)}")
    return row


def _work_queues(world: World, *, consumed: bool = False) -> list[str]:
    """The scenario's work queues; ``consumed``: only those a worker consumes now (R8 leaves the
    queue of its own test task behind, with no consumer in later scenarios: garbage published
    there would just wait, and count as not dead-lettered)."""
    node = world.dep.rabbit[0]
    r = httpx.get(f"http://127.0.0.1:{node.mgmt_port}/api/queues/%2F", auth=("guest", "guest"), timeout=10)
    return [q["name"] for q in r.json() if q["name"].startswith("chaos.")
            and not q["name"].endswith(".dlq") and ".delay." not in q["name"] and q["name"] != "chaos.heartbeats"
            and (not consumed or q.get("consumers", 0) > 0)]


def _publish_garbage(world: World) -> int:
    node = world.dep.rabbit[0]
    conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
    n = 0
    try:
        ch = conn.channel()
        for q in _work_queues(world, consumed=True):
            for body in (b"", b"not json", b'{"actor_name": "no.such.task", "args": [], "kwargs": {}}',
                         b'{"queue_name": "%s", "actor_name": 5}' % q.encode()):
                ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=2, message_id=f"garbage-{n}"))
                n += 1
    finally:
        conn.close()
    return n


def _dead_letters(world: World) -> int:
    total = 0
    for node in world.dep.rabbit:
        conn = pika.BlockingConnection(pika.URLParameters(node.amqp_url))
        try:
            for q in _work_queues(world):
                ch = conn.channel()
                try:
                    total += ch.queue_declare(q + ".dlq", passive=True).method.message_count
                except pika.exceptions.ChannelClosedByBroker:
                    pass
        finally:
            conn.close()
    return total


SCENARIOS: dict[str, Callable[[World], Row]] = {
    "R1": r1_node_kill,
    "R2": r2_worker_kills,
    "R3": r3_postgres_restart,
    "R4": r4_body_store,
    "R5": r5_partition,
    "R6": r6_memory_alarm,
    "R9": r9_fuzz,
}
