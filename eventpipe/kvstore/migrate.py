"""Move bodies between backends, and check a store against the event index.

The event index (SQL table ``events``) is the list of what must exist: ``migrate`` walks it in
``events.id`` order and copies each body's stored frame verbatim (no decode/re-encode, so the
destination holds byte-identical frames and checksums stay meaningful); ``verify`` reads every
indexed body and reports the missing and the corrupt.

Resuming: after each batch is written to the destination, a checkpoint (the last ``events.id``
done, plus running counts) is written **into the destination store** at the key
``_eventpipe/migrate/<hash of source and destination URLs>``. It lives with the data it
describes, so an interrupted run can be resumed from any machine, and a later run copies only
events indexed since. ``restart=True`` ignores it. Tools that look for orphaned bodies must skip
the reserved ``_eventpipe/`` prefix.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from .base import RESERVED_PREFIX, KeyValueStore, KVCorrupt, KVError, redact_url
from .codec import decode

MAX_LISTED = 100  # missing/corrupt keys listed in results; counts are always complete


@dataclass
class Progress:
    """What a progress callback receives after every batch."""

    done: int
    total: int
    copied: int = 0
    missing: int = 0
    corrupt: int = 0


ProgressCallback = Callable[[Progress], None]


@dataclass
class MigrateResult:
    total: int = 0
    scanned: int = 0
    copied: int = 0
    missing: int = 0
    corrupt: int = 0
    verified: int = 0
    verify_failed: int = 0
    resumed_from: int = 0
    last_id: int = 0
    checkpoint_key: str = ""
    missing_keys: list[str] = field(default_factory=list)
    corrupt_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.corrupt == 0 and self.verify_failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class VerifyResult:
    total: int = 0
    ok_count: int = 0
    missing: int = 0
    corrupt: int = 0
    missing_keys: list[str] = field(default_factory=list)
    corrupt_keys: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.corrupt == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def checkpoint_key(src_url: str, dst_url: str) -> str:
    """Stable per (source, destination) pair; credentials are left out so rotating them keeps it."""
    digest = hashlib.sha256(f"{redact_url(src_url)}\n{redact_url(dst_url)}".encode()).hexdigest()[:24]
    return f"{RESERVED_PREFIX}migrate/{digest}"


def _event_model() -> Any:
    from eventpipe.metadata.models import Event

    return Event


def _count_after(db: Any, after: int) -> int:
    Event = _event_model()
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(Event).where(Event.id > after)).scalar_one())


def _page(db: Any, after: int, batch: int) -> list[tuple[int, str]]:
    Event = _event_model()
    with db.session() as s:
        rows = s.execute(
            select(Event.id, Event.kv_key).where(Event.id > after).order_by(Event.id).limit(batch)
        ).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def _frame_ok(key: str, frame: bytes) -> bool:
    try:
        decode(key, frame)
    except KVCorrupt:
        return False
    return True


def _open_raw(url: str) -> KeyValueStore:
    from . import open_raw_store

    return open_raw_store(url)


def migrate(
    src_url: str,
    dst_url: str,
    db: Any,
    *,
    verify: bool = False,
    progress: ProgressCallback | None = None,
    batch: int = 500,
    restart: bool = False,
) -> MigrateResult:
    """Copy every indexed body from ``src_url`` to ``dst_url``; resumable, idempotent.

    With ``verify``, each source frame's checksum is checked before copying (a corrupt body is
    reported, not copied, so it cannot overwrite a good copy) and each written frame is read back
    and compared byte for byte. Missing source bodies are counted and listed, not fatal: the
    index may point at bodies a retention sweep already removed.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if redact_url(src_url) == redact_url(dst_url):
        raise KVError("source and destination are the same store; nothing to migrate")
    started = time.monotonic()
    src, dst = _open_raw(src_url), _open_raw(dst_url)
    result = MigrateResult(checkpoint_key=checkpoint_key(src_url, dst_url))
    try:
        state: dict[str, Any] = {}
        if not restart:
            raw = dst.get(result.checkpoint_key)
            if raw:
                state = json.loads(raw)
        after = int(state.get("last_id", 0))
        result.resumed_from = after
        result.copied = int(state.get("copied", 0))
        result.missing = int(state.get("missing", 0))
        result.corrupt = int(state.get("corrupt", 0))
        done_before = int(state.get("scanned", 0))
        result.total = done_before + _count_after(db, after)
        result.scanned = done_before
        if progress:
            progress(Progress(result.scanned, result.total, result.copied, result.missing, result.corrupt))
        while True:
            rows = _page(db, after, batch)
            if not rows:
                break
            keys = list(dict.fromkeys(key for _, key in rows))
            frames = src.get_many(keys)
            to_copy: dict[str, bytes] = {}
            for key in keys:
                frame = frames.get(key)
                if frame is None:
                    result.missing += 1
                    if len(result.missing_keys) < MAX_LISTED:
                        result.missing_keys.append(key)
                elif verify and not _frame_ok(key, frame):
                    result.corrupt += 1
                    if len(result.corrupt_keys) < MAX_LISTED:
                        result.corrupt_keys.append(key)
                else:
                    to_copy[key] = frame
            if to_copy:
                dst.put_many(to_copy)
            if verify and to_copy:
                back = dst.get_many(list(to_copy))
                for key, frame in to_copy.items():
                    if back.get(key) == frame:
                        result.verified += 1
                    else:
                        result.verify_failed += 1
                        if len(result.corrupt_keys) < MAX_LISTED:
                            result.corrupt_keys.append(key)
            result.copied += len(to_copy)
            result.scanned += len(rows)
            after = rows[-1][0]
            result.last_id = after
            # the checkpoint is written only after the batch is durable in the destination
            dst.put(result.checkpoint_key, json.dumps({
                "src": redact_url(src_url), "dst": redact_url(dst_url), "last_id": after,
                "scanned": result.scanned, "copied": result.copied, "missing": result.missing,
                "corrupt": result.corrupt, "updated_at": time.time(),
            }).encode())
            if progress:
                progress(Progress(result.scanned, result.total, result.copied, result.missing, result.corrupt))
        result.last_id = after
    finally:
        src.close()
        dst.close()
    result.seconds = time.monotonic() - started
    return result


def verify(url: str, db: Any, *, progress: ProgressCallback | None = None, batch: int = 500) -> VerifyResult:
    """Read every body the index names; count the missing and those failing their checksum."""
    started = time.monotonic()
    store = _open_raw(url)
    result = VerifyResult()
    try:
        result.total = _count_after(db, 0)
        after, done = 0, 0
        while True:
            rows = _page(db, after, batch)
            if not rows:
                break
            keys = [key for _, key in rows]
            frames = store.get_many(keys)
            for key in keys:
                frame = frames.get(key)
                if frame is None:
                    result.missing += 1
                    if len(result.missing_keys) < MAX_LISTED:
                        result.missing_keys.append(key)
                elif not _frame_ok(key, frame):
                    result.corrupt += 1
                    if len(result.corrupt_keys) < MAX_LISTED:
                        result.corrupt_keys.append(key)
                else:
                    result.ok_count += 1
            done += len(rows)
            after = rows[-1][0]
            if progress:
                progress(Progress(done, result.total, result.ok_count, result.missing, result.corrupt))
    finally:
        store.close()
    result.seconds = time.monotonic() - started
    return result
