"""The whole pipeline on the embedded broker, against SQLite and the machine's Postgres."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from sqlalchemy import func, select, update

from eventpipe.ingest.submit import submit_many
from eventpipe.metadata.models import Activity, BufferedCounter, Event, Issue, Rollup
from eventpipe.metadata.queries import ensure_project, issue_rows
from eventpipe.pipeline.keys import body_key
from eventpipe.tasks.buffers import flush_counters
from eventpipe.tasks.events import process
from eventpipe.tasks.rollups import daily, hourly


def crash(value="'x'", function="show", line=10, **extra):
    return {
        "event_id": uuid.uuid4().hex,
        "platform": "python",
        "exception": {"values": [{"type": "KeyError", "value": value, "stacktrace": {"frames": [
            {"module": "django.core", "function": "dispatch", "lineno": 3},
            {"module": "app.views", "function": function, "lineno": line},
        ]}}]},
        "extra": {"password": "hunter2"},
        **extra,
    }


def count(rt, model):
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_events_flow_group_count_and_store(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    events = [crash(line=i) for i in range(30)] + [crash(function="edit") for _ in range(5)]
    events += [{"event_id": uuid.uuid4().hex, "logentry": {"message": "user %s failed", "params": [str(i)]}} for i in range(7)]
    result = submit_many(rt, 1, events + [events[0], ["not", "an", "event"]])
    assert len(result.accepted) == 42
    assert result.duplicates == [events[0]["event_id"]]
    assert result.rejected_by_reason() == {"not_an_object": 1}

    rt.broker.run_until_idle()
    assert count(rt, Event) == 42
    assert flush_counters(rt) == 42
    rows = issue_rows(rt.db)
    assert sorted(r["count"] for r in rows) == [5, 7, 30]
    titles = {r["title"] for r in rows}
    assert "KeyError: 'x'" in titles
    assert any(t.startswith("user ") and t.endswith(" failed") for t in titles)

    # bodies are stored, normalized and scrubbed, at deterministic keys
    body = orjson.loads(rt.store.get(body_key(1, events[0]["event_id"])))
    assert body["extra"]["password"] == "[Filtered]"
    assert body["exception"][0]["frames"][1]["in_app"] is True
    assert sum(1 for _ in rt.store.keys()) == 42

    # first_seen activity once per issue, handed over by post_process
    with rt.db.session() as s:
        acts = s.execute(select(Activity.kind, Activity.notified_at)).all()
    assert len(acts) == 3 and all(a.kind == "first_seen" and a.notified_at for a in acts)

    # rollups: per issue and project totals agree with the event index
    hourly(rt, lookback_hours=48)
    daily(rt, lookback_hours=48)
    with rt.db.session() as s:
        day_total = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resolution == "day", Rollup.issue_id == 0))
        hour_issues = s.scalar(select(func.sum(Rollup.count)).where(Rollup.resolution == "hour", Rollup.issue_id != 0))
    assert day_total == 42 and hour_issues == 42
    hourly(rt, lookback_hours=48)  # recomputing changes nothing
    with rt.db.session() as s:
        assert s.scalar(select(func.sum(Rollup.count)).where(Rollup.resolution == "hour", Rollup.issue_id == 0)) == 42


def test_redelivered_tasks_change_nothing(make_runtime, db_url):
    """A message delivered twice (RabbitMQ replays after a crash) has its effect once."""
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    event = crash()
    submit_many(rt, 1, [event])
    rt.broker.run_until_idle()
    eid = event["event_id"]
    with rt.db.session() as s:
        received = s.scalar(select(Event.received_at).where(Event.event_id == eid))
    # replay every step by hand, as a redelivery would
    process.send(rt, project_id=1, event_id=eid, received=time.time())
    process.send_many(rt, [{"project_id": 1, "event_id": eid, "received": time.time()}] * 3)
    rt.broker.run_until_idle()
    assert count(rt, Event) == 1
    assert count(rt, BufferedCounter) == 1
    assert flush_counters(rt) == 1 and flush_counters(rt) == 0
    with rt.db.session() as s:
        assert s.scalar(select(Issue.times_seen)) == 1
        assert s.scalar(select(Event.received_at).where(Event.event_id == eid)) == received


def test_regression_is_recorded_once(make_runtime, db_url):
    rt = make_runtime(database_url=db_url)
    ensure_project(rt.db, 1, "api")
    submit_many(rt, 1, [crash()])
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        s.execute(update(Issue).values(status="resolved"))
    submit_many(rt, 1, [crash(), crash()])
    rt.broker.run_until_idle()
    with rt.db.session() as s:
        kinds = sorted(s.scalars(select(Activity.kind)))
        status = s.scalar(select(Issue.status))
    assert kinds == ["first_seen", "regression"]
    assert status == "unresolved"


def test_unknown_project_and_bad_events_affect_nothing_else(make_runtime):
    rt = make_runtime()
    ensure_project(rt.db, 1, "api")
    result = submit_many(rt, 99, [crash()])
    assert result.rejected_by_reason() == {"unknown_project": 1}
    good = crash()
    result = submit_many(rt, 1, [[1, 2], good, b"{not json"])
    assert result.accepted == [good["event_id"]]
    assert result.rejected_by_reason() == {"not_an_object": 1, "invalid_json": 1}
    rt.broker.run_until_idle()
    assert count(rt, Event) == 1


def _break_store(kv_dir):
    """Make a file:// body store unwritable (also for root: its folder replaced by a file)."""
    kv_dir.chmod(0o500)
    probe = kv_dir / "probe"
    try:
        probe.write_bytes(b"")
        writable_as_root = True
        probe.unlink()
    except PermissionError:
        writable_as_root = False
    if writable_as_root:
        import shutil

        kv_dir.chmod(0o700)
        shutil.rmtree(kv_dir)
        kv_dir.write_bytes(b"")


def _heal_store(kv_dir):
    if kv_dir.is_file():
        kv_dir.unlink()
    kv_dir.mkdir(exist_ok=True)
    kv_dir.chmod(0o700)


def test_body_store_outage_at_embedded_ingest_refuses_the_events(make_runtime, tmp_path):
    """Embedded mode, body store unwritable (e.g. the home's disk is full, chaos R7): ingest
    refuses with SubmitError (HTTP 503 + Retry-After) instead of carrying the bodies in the
    in-memory broker, where a restart or exhausted retries would lose events reported accepted."""
    from eventpipe.ingest.submit import SubmitError

    kv_dir = tmp_path / "kv"
    rt = make_runtime(kv_url=f"file://{kv_dir}", min_backoff_ms=50, max_backoff_ms=200)
    ensure_project(rt.db, 1, "api")
    _break_store(kv_dir)
    with pytest.raises(SubmitError, match="nothing was accepted"):
        submit_many(rt, 1, [crash()])
    rt.broker.run_until_idle()
    assert count(rt, Event) == 0
    _heal_store(kv_dir)
    event = crash()
    assert submit_many(rt, 1, [event]).accepted == [event["event_id"]]
    rt.broker.run_until_idle()
    assert count(rt, Event) == 1


def test_store_blob_retries_until_the_body_store_is_back(make_runtime, tmp_path):
    """events.store_blob (what ingest publishes with the body when the store is down and the broker
    is durable) retries until the store is back; nothing is lost."""
    import threading

    from eventpipe.tasks.events import store_blob

    kv_dir = tmp_path / "kv"
    rt = make_runtime(kv_url=f"file://{kv_dir}", min_backoff_ms=50, max_backoff_ms=200)
    ensure_project(rt.db, 1, "api")
    _break_store(kv_dir)
    event = crash()
    rt.enqueue_many(store_blob, [{"project_id": 1, "event_id": event["event_id"], "received": time.time(),
                                  "body": orjson.dumps(event).decode()}])

    def heal() -> None:
        time.sleep(0.5)
        _heal_store(kv_dir)

    threading.Thread(target=heal).start()
    rt.broker.run_until_idle()
    assert count(rt, Event) == 1
    assert rt.store.get(body_key(1, event["event_id"])) is not None
