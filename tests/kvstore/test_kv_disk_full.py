"""A full disk under the SQLite body store is reported as KVUnavailable naming the cause.

The chaos suite's R7 (the embedded home on a full tmpfs) found batch writes failing with
"cannot rollback - no transaction is active": SQLite had already rolled the batch back on
SQLITE_FULL, the store's own ROLLBACK failed, and that error replaced the real one. Here the
database is made "full" with ``PRAGMA max_page_count`` (the same SQLITE_FULL error a full disk
gives, without needing root to mount a small file system).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventpipe.kvstore import KVUnavailable
from eventpipe.kvstore.sqlite import SQLiteStore


def test_full_database_is_unavailable_with_its_reason_and_recovers(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bodies.sqlite3'}")
    try:
        store.put("first", b"kept")
        conn = store._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")

        with pytest.raises(KVUnavailable, match="database or disk is full"):
            store.put_many({f"k{i}": os.urandom(4000) for i in range(50)})
        with pytest.raises(KVUnavailable, match="database or disk is full"):
            store.put("big", os.urandom(100_000))
        assert store.get("first") == b"kept"
        assert store.get("k0") is None, "a failed batch writes nothing"

        conn.execute("PRAGMA max_page_count = 1073741823")  # space again
        values = {f"k{i}": os.urandom(4000) for i in range(50)}
        store.put_many(values)
        assert store.get_many(values) == values
    finally:
        store.close()
