"""Moving bodies between backends, verifying against the event index, dual writes, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventpipe.cli._common import ExitCode
from eventpipe.cli.kv import kv
from eventpipe.kvstore import (
    DualWriteStore,
    open_configured_store,
    open_raw_store,
    open_store,
)
from eventpipe.kvstore.migrate import Progress, checkpoint_key, migrate, verify
from eventpipe.testing.ports import free_port
from eventpipe.testing.servers import SeaweedFS

AddEvents = Callable[[Any, list[str]], None]


# -- an event index to migrate and verify against -------------------------------------------------
@pytest.fixture
def index_db(tmp_path: Path) -> Iterator[Any]:
    """A fresh SQLite metadata database (migrated) for the event index."""
    from eventpipe.metadata.db import Database

    db = Database(f"sqlite:///{tmp_path / 'meta.sqlite3'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def add_events() -> AddEvents:
    """Insert one project, one issue and an event row per kv key (``{project_id}/{event_id}``)."""

    def add(db: Any, keys: list[str]) -> None:
        from eventpipe.metadata.models import Event, Issue, Project

        now = datetime(2026, 11, 22, 8, 0, 0)
        with db.session() as s:
            project = s.get(Project, 1)
            if project is None:
                s.add(Project(id=1, name="p", ingest_key="k" * 32, retention_days=90, created_at=now))
                s.flush()
                s.add(Issue(project_id=1, fingerprint_hash="f" * 32, title="boom", first_seen=now, last_seen=now))
                s.flush()
            issue_id = s.query(Issue.id).filter_by(project_id=1).scalar()
            for key in keys:
                s.add(Event(project_id=1, event_id=key.split("/", 1)[1], issue_id=issue_id, timestamp=now,
                            received_at=now, kv_key=key, size=0))

    return add


def _seed(url: str, db: Any, add_events: AddEvents, n: int, start: int = 0) -> dict[str, bytes]:
    """n events indexed and stored (through the codec, as the pipeline writes them)."""
    bodies = {f"1/{i:032x}": (b'{"event": %d, "pad": "%s"}' % (i, b"x" * (i % 700))) for i in range(start, start + n)}
    store = open_store(url)
    store.put_many(bodies)
    store.close()
    add_events(db, list(bodies))
    return bodies


def test_migrate_copies_frames_verbatim_and_resumes(tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    src = f"sqlite://{tmp_path / 'src.sqlite3'}"
    dst = f"file://{tmp_path / 'dst'}"
    bodies = _seed(src, index_db, add_events, 1200)

    class Interrupted(Exception):
        pass

    seen: list[Progress] = []

    def stop_after_two_batches(p: Progress) -> None:
        seen.append(p)
        if p.done >= 1000:
            raise Interrupted

    with pytest.raises(Interrupted):
        migrate(src, dst, index_db, batch=500, progress=stop_after_two_batches)
    assert [p.done for p in seen] == [0, 500, 1000]
    partial = open_raw_store(dst)
    assert len([k for k in partial.keys("1/")]) == 1000

    again = migrate(src, dst, index_db, batch=500, verify=True)
    assert again.resumed_from > 0 and again.scanned == 1200 and again.total == 1200
    assert again.copied == 1200 and again.verified == 200 and again.ok  # only the last 200 re-done
    raw_src, raw_dst = open_raw_store(src), open_raw_store(dst)
    for key in bodies:
        assert raw_dst.get(key) == raw_src.get(key), "frames are copied byte for byte"
    assert open_store(dst).get_many(list(bodies)) == bodies
    assert raw_dst.get(checkpoint_key(src, dst)) is not None

    # new events after a finished run: a re-run copies only those
    more = _seed(src, index_db, add_events, 30, start=5000)
    third = migrate(src, dst, index_db)
    assert third.copied == 1230 and third.scanned == 1230
    assert open_store(dst).get_many(list(more)) == more
    # --restart copies everything again (idempotently)
    fourth = migrate(src, dst, index_db, restart=True)
    assert fourth.resumed_from == 0 and fourth.copied == 1230


def test_verify_and_migrate_report_missing_and_corrupt(tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    src = f"file://{tmp_path / 'src'}"
    dst = f"sqlite://{tmp_path / 'dst.sqlite3'}"
    bodies = _seed(src, index_db, add_events, 50)
    keys = list(bodies)
    raw = open_raw_store(src)
    raw.delete(keys[3])
    frame = bytearray(raw.get(keys[7]) or b"")
    frame[-1] ^= 0xFF
    raw.put(keys[7], bytes(frame))

    report = verify(src, index_db)
    assert (report.total, report.ok_count, report.missing, report.corrupt) == (50, 48, 1, 1)
    assert report.missing_keys == [keys[3]] and report.corrupt_keys == [keys[7]] and not report.ok

    result = migrate(src, dst, index_db, verify=True)
    assert (result.copied, result.missing, result.corrupt, result.verify_failed) == (48, 1, 1, 0)
    assert open_raw_store(dst).get(keys[7]) is None, "a corrupt body is not copied over a possibly good one"
    after = verify(dst, index_db)
    assert (after.missing, after.corrupt) == (2, 0)


def _migrate_to(dst_url: str, tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    src = f"file://{tmp_path / 'src'}"
    bodies = _seed(src, index_db, add_events, 700)
    result = migrate(src, dst_url, index_db, verify=True, batch=300)
    assert result.ok and result.copied == 700 and result.verified == 700
    assert verify(dst_url, index_db).ok
    dst = open_store(dst_url)
    assert dst.get_many(list(bodies)) == bodies
    dst.delete_many([*bodies, checkpoint_key(src, dst_url)])
    dst.close()


@pytest.mark.postgres
def test_migrate_to_postgres(kv_pg_url: str, tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    _migrate_to(kv_pg_url, tmp_path, index_db, add_events)


@pytest.mark.redis
def test_migrate_to_redis(kv_redis_url: str, tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    _migrate_to(kv_redis_url, tmp_path, index_db, add_events)


@pytest.mark.slow
def test_migrate_to_s3(seaweed: SeaweedFS, tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    _migrate_to(seaweed.url("migrate-target"), tmp_path, index_db, add_events)


# -- dual writes ----------------------------------------------------------------------------------
def test_dual_write_store(tmp_path: Path) -> None:
    new, old = open_store(f"sqlite://{tmp_path / 'new.sqlite3'}"), open_store(f"file://{tmp_path / 'old'}")
    old.put("1/only-old", b"legacy")
    dual = DualWriteStore(new, old)
    dual.put("1/a", b"A")
    dual.put_many({"1/b": b"B", "1/c": b"C"})
    for store in (new, old):
        assert store.get_many(["1/a", "1/b", "1/c"]) == {"1/a": b"A", "1/b": b"B", "1/c": b"C"}
    assert dual.get("1/only-old") == b"legacy"
    assert dual.get_many(["1/a", "1/only-old", "1/none"]) == {"1/a": b"A", "1/only-old": b"legacy"}
    assert dual.exists("1/only-old") and not dual.exists("1/none")
    assert list(dual.keys("1/")) == ["1/a", "1/b", "1/c", "1/only-old"]
    dual.delete_many(["1/a", "1/only-old"])
    assert dual.get("1/a") is None and dual.get("1/only-old") is None
    dual.close()


def test_open_configured_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventpipe.config import load_settings

    settings = load_settings(home=tmp_path / "home", kv_url=f"sqlite://{tmp_path / 'new.sqlite3'}")
    plain = open_configured_store(settings)
    assert not isinstance(plain, DualWriteStore)
    plain.close()
    monkeypatch.setenv("EVENTPIPE_KV_OLD_URL", f"file://{tmp_path / 'old'}")  # read once, into Settings
    settings = load_settings(home=tmp_path / "home", kv_url=f"sqlite://{tmp_path / 'new.sqlite3'}")
    assert settings.kv_old_url == f"file://{tmp_path / 'old'}"
    dual = open_configured_store(settings)
    assert isinstance(dual, DualWriteStore) and dual.old.url.startswith("file://")
    dual.close()


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_migrate_and_verify(tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    src, dst = f"file://{tmp_path / 'src'}", f"sqlite://{tmp_path / 'dst.sqlite3'}"
    bodies = _seed(src, index_db, add_events, 40)
    runner = CliRunner()
    db = ["--database", index_db.url]

    out = runner.invoke(kv, ["verify", dst, *db, "--json"])
    assert out.exit_code == ExitCode.FAILED and json.loads(out.stdout)["missing"] == 40

    out = runner.invoke(kv, ["migrate", "--from", src, "--to", dst, "--verify", *db, "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["copied"] == 40 and result["verified"] == 40 and result["ok"] is True

    out = runner.invoke(kv, ["verify", dst, *db])
    assert out.exit_code == 0 and "ok 40" in out.stdout and "missing 0" in out.stdout

    open_raw_store(dst).delete(next(iter(bodies)))
    out = runner.invoke(kv, ["verify", dst, *db])
    assert out.exit_code == ExitCode.FAILED and "missing 1" in out.stdout and "next:" in out.stderr

    out = runner.invoke(kv, ["migrate", "--from", src, "--to", dst, *db])
    assert out.exit_code == 0 and "copied 40" in out.stdout  # counts carried by the checkpoint


def test_cli_errors_say_what_to_do(tmp_path: Path, index_db: Any, add_events: AddEvents) -> None:
    add_events(index_db, ["1/" + "a" * 32])
    runner = CliRunner()
    db = ["--database", index_db.url]
    dead = f"redis://:s3cret@127.0.0.1:{free_port()}/0?timeout=1"
    out = runner.invoke(kv, ["migrate", "--from", dead, "--to", f"file://{tmp_path / 'x'}", *db])
    assert out.exit_code == ExitCode.UNAVAILABLE, out.output
    assert "s3cret" not in out.output and "next:" in out.stderr
    out = runner.invoke(kv, ["verify", "bogus://x", *db])
    assert out.exit_code == 2 and "eventpipe kv backends" in out.stderr
    out = runner.invoke(kv, ["migrate", "--from", "memory://", "--to", "memory://", *db])
    assert out.exit_code == 2 and "same store" in out.stderr
