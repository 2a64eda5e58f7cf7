"""``kv.migrate_range`` and ``kv.verify_range``: copy or check the bodies of a range of the event
index (``events.id``) as queued work, one chunk per message, so a large store is moved by the
workers instead of one long-running command, and any worker can carry on after a crash.

Progress lives in ``kv_range_jobs`` (one row per job id: the cursor, the counts; URLs without
credentials). Each message names the cursor it continues from; it does its chunk, then advances
the row's cursor by compare-and-set and enqueues the next chunk. A redelivered message whose
chunk was already committed finds the cursor moved and stops (the chain goes on from the message
already enqueued); two copies of one message race on the compare-and-set and one stops. Copies
are verbatim frames (``eventpipe.kvstore.migrate``'s rules: no re-encode, a corrupt source frame
is never copied over a possibly good one), so redoing a chunk rewrites identical bytes.
Sending the task again with the same ``job_id`` and no ``after_id`` resumes a stalled job.

``kv.verify_range`` counts missing and corrupt bodies; with ``repair_from`` it copies a good
frame from that store over each missing or corrupt one (the repair after a partial outage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from eventpipe.kvstore import open_raw_store, redact_url
from eventpipe.kvstore.migrate import _frame_ok
from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.models import Event, KvRangeJob
from eventpipe.metadata.repo import insert_ignore
from eventpipe.tasks.api import PermanentError, TaskContext, task

CHUNK = 500


@dataclass
class Chunk:
    cursor: int
    until: int
    rows: list[tuple[int, str]]


def _start(
    db: Database, job_id: str, kind: str, source: str, destination: str, after_id: int | None, until_id: int | None, size: int
) -> Chunk | None:
    """Create the job row on first sight; return the chunk this message owns, or None if it is stale."""
    with db.session() as s:
        until = until_id if until_id is not None else int(s.scalar(select(func.max(Event.id))) or 0)
        insert_ignore(s, KvRangeJob, [{
            "job_id": job_id, "kind": kind, "source": redact_url(source), "destination": redact_url(destination) if destination else "",
            "cursor": after_id or 0, "until": until, "scanned": 0, "copied": 0, "missing": 0, "corrupt": 0, "repaired": 0,
            "state": "running", "updated_at": utcnow(),
        }], ["job_id"])
    with db.session() as s:
        job = s.get(KvRangeJob, job_id)
        assert job is not None
        if job.kind != kind or job.source != redact_url(source):
            raise PermanentError(f"job {job_id!r} is a {job.kind} job of {job.source}; pick another job id")
        if job.state == "done" or (after_id is not None and after_id != job.cursor):
            return None  # finished, or a redelivery of a chunk already committed
        cursor, until = job.cursor, int(job.until or 0)
        rows = [
            (int(i), str(k))
            for i, k in s.execute(
                select(Event.id, Event.kv_key).where(Event.id > cursor, Event.id <= until).order_by(Event.id).limit(size)
            ).all()
        ]
    return Chunk(cursor, until, rows)


def _advance(db: Database, job_id: str, chunk: Chunk, counts: dict[str, int], size: int) -> bool:
    """Compare-and-set the cursor past this chunk and add its counts; False when another copy won."""
    last = chunk.rows[-1][0] if chunk.rows else chunk.until
    done = len(chunk.rows) < size
    with db.session() as s:
        won = s.execute(
            update(KvRangeJob)
            .where(KvRangeJob.job_id == job_id, KvRangeJob.cursor == chunk.cursor, KvRangeJob.state == "running")
            .values(
                cursor=last, state="done" if done else "running", updated_at=utcnow(),
                scanned=KvRangeJob.scanned + len(chunk.rows),
                **{k: getattr(KvRangeJob, k) + v for k, v in counts.items()},
            )
        ).rowcount
    return bool(won) and not done


@task("kv.migrate_range", queue="kv", max_retries=20, min_backoff_ms=1000, max_backoff_ms=60_000)
def migrate_range(
    ctx: TaskContext, *, job_id: str, src_url: str, dst_url: str, after_id: int | None = None, until_id: int | None = None,
    chunk: int = CHUNK, verify: bool = False,
) -> dict[str, Any]:
    """Copy one chunk of indexed bodies from src_url to dst_url verbatim, then enqueue the next."""
    if redact_url(src_url) == redact_url(dst_url):
        raise PermanentError("source and destination are the same store; nothing to migrate")
    part = _start(ctx.db, job_id, "migrate", src_url, dst_url, after_id, until_id, chunk)
    if part is None:
        return {"skipped": "stale or finished"}
    counts = {"copied": 0, "missing": 0, "corrupt": 0}
    if part.rows:
        src, dst = open_raw_store(src_url), open_raw_store(dst_url)
        try:
            keys = list(dict.fromkeys(k for _, k in part.rows))
            frames = src.get_many(keys)
            good = {}
            for key in keys:
                frame = frames.get(key)
                if frame is None:
                    counts["missing"] += 1
                elif verify and not _frame_ok(key, frame):
                    counts["corrupt"] += 1
                else:
                    good[key] = frame
            if good:
                dst.put_many(good)
            counts["copied"] = len(good)
        finally:
            src.close()
            dst.close()
    if _advance(ctx.db, job_id, part, counts, chunk):
        migrate_range.send(ctx, job_id=job_id, src_url=src_url, dst_url=dst_url, after_id=part.rows[-1][0],
                           until_id=part.until, chunk=chunk, verify=verify)
    return counts


@task("kv.verify_range", queue="kv", max_retries=20, min_backoff_ms=1000, max_backoff_ms=60_000)
def verify_range(
    ctx: TaskContext, *, job_id: str, url: str | None = None, repair_from: str | None = None, after_id: int | None = None,
    until_id: int | None = None, chunk: int = CHUNK,
) -> dict[str, Any]:
    """Check one chunk of indexed bodies (missing, bad checksum), repair them from ``repair_from``
    when given, then enqueue the next chunk. ``url`` defaults to the configured store."""
    target = url or ctx.settings.resolved_kv_url()
    part = _start(ctx.db, job_id, "verify", target, repair_from or "", after_id, until_id, chunk)
    if part is None:
        return {"skipped": "stale or finished"}
    counts = {"missing": 0, "corrupt": 0, "repaired": 0}
    if part.rows:
        store = open_raw_store(target)
        spare = open_raw_store(repair_from) if repair_from else None
        try:
            keys = list(dict.fromkeys(k for _, k in part.rows))
            frames = store.get_many(keys)
            bad = []
            for key in keys:
                frame = frames.get(key)
                if frame is None:
                    counts["missing"] += 1
                    bad.append(key)
                elif not _frame_ok(key, frame):
                    counts["corrupt"] += 1
                    bad.append(key)
            if spare is not None and bad:
                fixes = {k: f for k, f in spare.get_many(bad).items() if f is not None and _frame_ok(k, f)}
                if fixes:
                    store.put_many(fixes)
                counts["repaired"] = len(fixes)
        finally:
            store.close()
            if spare is not None:
                spare.close()
    if _advance(ctx.db, job_id, part, counts, chunk):
        verify_range.send(ctx, job_id=job_id, url=url, repair_from=repair_from, after_id=part.rows[-1][0],
                          until_id=part.until, chunk=chunk)
    return counts


def range_job(db: Database, job_id: str) -> dict[str, Any] | None:
    """A job's progress and counts (what `kv` commands and the console show)."""
    with db.session() as s:
        job = s.get(KvRangeJob, job_id)
        if job is None:
            return None
        return {
            "job_id": job.job_id, "kind": job.kind, "source": job.source, "destination": job.destination,
            "cursor": job.cursor, "until": job.until, "scanned": job.scanned, "copied": job.copied, "missing": job.missing,
            "corrupt": job.corrupt, "repaired": job.repaired, "state": job.state, "updated_at": job.updated_at.isoformat() + "Z",
        }
