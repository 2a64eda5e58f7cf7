"""The physical limit of this broker and database on this machine: a minimal hand-written consumer
that does only what any pipeline must (take reference messages off RabbitMQ, write one row per
event to Postgres, ack after the commit) as cheaply as Python can.

pika ``basic_consume`` with a large prefetch; messages are gathered into a batch until it holds
``BATCH`` or the socket has been idle for a moment; one multi-row ``INSERT ... SELECT FROM unnest``
into the ``events`` table (``ON CONFLICT DO NOTHING``, so a redelivery changes nothing), one
commit, then one ``basic_ack(last_tag, multiple=True)``. No normalizing, grouping or KV: every
event row points at one issue per project made beforehand. Exits on SIGTERM.

    python -m benchmarks.limit_consumer AMQP_URL QUEUE PG_URL ISSUES_JSON [PREFETCH] [BATCH]
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pika
import psycopg

COLUMNS = ["project_id", "event_id", "issue_id", "timestamp", "received_at", "kv_key", "size", "platform", "level"]
TYPES = ["int", "text", "bigint", "timestamp", "timestamp", "text", "int", "text", "text"]


def insert_sql(with_fingerprint: bool) -> str:
    cols, types = list(COLUMNS), list(TYPES)
    if with_fingerprint:
        cols.append("fingerprint")
        types.append("text")
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    return f"INSERT INTO events ({', '.join(cols)}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"


def main(argv: list[str]) -> None:
    url, queue, pg_url, issues_json = argv[:4]
    prefetch = int(argv[4]) if len(argv) > 4 else 1000
    batch_max = int(argv[5]) if len(argv) > 5 else 500
    issues: dict[int, int] = {int(k): v for k, v in json.loads(issues_json).items()}
    db = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    with db.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'fingerprint'")
        with_fingerprint = cur.fetchone() is not None
    sql = insert_sql(with_fingerprint)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "classic"})
    ch.basic_qos(prefetch_count=prefetch)
    pending: list[tuple[int, bytes]] = []
    running = [True]

    def on_message(_ch: Any, method: Any, _props: Any, body: bytes) -> None:
        pending.append((method.delivery_tag, body))

    def flush() -> None:
        refs = [orjson.loads(body) for _, body in pending]
        now = datetime.now(UTC).replace(tzinfo=None)
        cols: list[list[Any]] = [
            [r["project_id"] for r in refs],
            [r["event_id"] for r in refs],
            [issues[r["project_id"]] for r in refs],
            [now] * len(refs),
            [datetime.fromtimestamp(r["received"], UTC).replace(tzinfo=None) for r in refs],
            [f"{r['project_id']}/{r['event_id']}" for r in refs],
            [0] * len(refs),
            ["other"] * len(refs),
            ["error"] * len(refs),
        ]
        if with_fingerprint:
            cols.append([""] * len(refs))
        with db.cursor() as cur:
            cur.execute(sql, cols)
        db.commit()
        ch.basic_ack(pending[-1][0], multiple=True)
        pending.clear()

    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ch.basic_consume(queue, on_message)
    try:
        while running[0]:
            before = len(pending)
            conn.process_data_events(time_limit=0.005)
            idle = len(pending) == before
            if pending and (len(pending) >= batch_max or idle):
                flush()
    finally:
        try:
            conn.close()
        finally:
            db.close()


if __name__ == "__main__":
    main(sys.argv[1:])
