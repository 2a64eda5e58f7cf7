"""kv.migrate_range and kv.verify_range: chunked, resumable, redelivery-safe, on SQLite and Postgres
metadata with real body stores (the runtime's SQLite store and a file:// store)."""

from __future__ import annotations

from eventpipe.kvstore import open_raw_store
from eventpipe.metadata.queries import ensure_project
from eventpipe.pipeline.keys import body_key
from eventpipe.tasks.kv import migrate_range, range_job, verify_range
from tests.support.events import crash, ingest


def test_migrate_then_verify_and_repair_a_range(make_runtime, db_url, tmp_path):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash() for _ in range(7)]
    ingest(rt, 1, events)
    src, dst = rt.settings.resolved_kv_url(), f"file://{tmp_path / 'dst'}"
    keys = [body_key(1, e["event_id"]) for e in events]

    migrate_range.send(rt.context, job_id="m1", src_url=src, dst_url=dst, chunk=3)
    rt.broker.run_until_idle()
    job = range_job(rt.db, "m1")
    assert job is not None and (job["state"], job["scanned"], job["copied"], job["missing"]) == ("done", 7, 7, 0)
    raw_src, raw_dst = open_raw_store(src), open_raw_store(dst)
    assert raw_dst.get_many(keys) == raw_src.get_many(keys)  # byte-identical frames

    # A redelivery of the first message finds the cursor moved: nothing counted twice.
    assert migrate_range(rt.context, job_id="m1", src_url=src, dst_url=dst, after_id=0, chunk=3) == {"skipped": "stale or finished"}
    assert range_job(rt.db, "m1")["copied"] == 7

    # Damage the copy: one body lost, one corrupt; verify finds both and repairs them from the source.
    raw_dst.delete(keys[1])
    frame = bytearray(raw_dst.get(keys[4]) or b"")
    frame[-1] ^= 0xFF
    raw_dst.put(keys[4], bytes(frame))
    verify_range.send(rt.context, job_id="v1", url=dst, repair_from=src, chunk=2)
    rt.broker.run_until_idle()
    job = range_job(rt.db, "v1")
    assert (job["state"], job["scanned"], job["missing"], job["corrupt"], job["repaired"]) == ("done", 7, 1, 1, 2)
    assert raw_dst.get_many(keys) == raw_src.get_many(keys)
    verify_range.send(rt.context, job_id="v2", url=dst, chunk=5)
    rt.broker.run_until_idle()
    assert (range_job(rt.db, "v2")["missing"], range_job(rt.db, "v2")["corrupt"]) == (0, 0)


def test_a_stalled_job_resumes_from_its_cursor(make_runtime, db_url, tmp_path):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    ingest(rt, 1, [crash() for _ in range(5)])
    src, dst = rt.settings.resolved_kv_url(), f"file://{tmp_path / 'dst'}"
    # Run the first chunk inline and drop the message it enqueued (as if the worker died there).
    migrate_range(rt.context, job_id="m2", src_url=src, dst_url=dst, chunk=2)
    assert rt.broker.purge(rt.topology.queue("kv")) == {"embedded": 1}
    assert range_job(rt.db, "m2")["scanned"] == 2
    migrate_range.send(rt.context, job_id="m2", src_url=src, dst_url=dst, chunk=2)  # no after_id: resume
    rt.broker.run_until_idle()
    job = range_job(rt.db, "m2")
    assert (job["state"], job["scanned"], job["copied"]) == ("done", 5, 5)
