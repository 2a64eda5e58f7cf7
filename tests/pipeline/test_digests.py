"""Digest timelines (the reference system's minimum/maximum delay) and digest building (pure logic)."""

from __future__ import annotations

from datetime import datetime, timedelta

from eventpipe.pipeline.digests import IssueFacts, RecordFacts, Timeline, build_digest, is_due, on_add, on_deliver

T0 = datetime(2026, 1, 1, 12, 0, 0)
MIN, MAX = 300.0, 1800.0


def test_idle_project_is_ready_at_once() -> None:
    t = on_add(None, T0, MIN, MAX)
    assert t == Timeline("ready", T0, None) and is_due(t, T0)
    assert on_add(t, T0 + timedelta(seconds=5), MIN, MAX) == t  # adds to a ready timeline change nothing


def test_delivery_waits_minimum_then_adds_push_up_to_maximum() -> None:
    t = on_deliver(T0, MIN, delivered=3, still_pending=0)
    assert t == Timeline("waiting", T0 + timedelta(seconds=300), T0)
    assert not is_due(t, T0 + timedelta(seconds=299))
    # each add pushes the due time by the minimum delay ...
    t = on_add(t, T0 + timedelta(seconds=10), MIN, MAX)
    assert t.due_at == T0 + timedelta(seconds=600)
    # ... but never past last delivery + maximum delay: a steady flood is one digest per 30 minutes
    for i in range(100):
        t = on_add(t, T0 + timedelta(seconds=20 + i), MIN, MAX)
    assert t.due_at == T0 + timedelta(seconds=1800)


def test_empty_delivery_makes_idle_unless_records_arrived() -> None:
    assert on_deliver(T0, MIN, delivered=0, still_pending=0) is None
    assert on_deliver(T0, MIN, delivered=0, still_pending=2) == Timeline("waiting", T0 + timedelta(seconds=300), T0)


def test_build_digest_lists_each_issue_once_per_recipient() -> None:
    issues = {
        1: IssueFacts(1, "KeyError: 'x'", "app.views in show", "error", "unresolved", 17000),
        2: IssueFacts(2, "ValueError", "app.jobs", "error", "unresolved", 3000),
    }
    records = [RecordFacts(10, 1, "first_seen")] + [RecordFacts(11, 1, "every_event")] * 500 + [RecordFacts(10, 2, "first_seen")]
    recipients = {10: ["ops@example.com", "dev@example.com"], 11: ["dev@example.com"]}
    msgs = build_digest("api", records, issues, recipients)
    assert [m.recipient for m in msgs] == ["dev@example.com", "ops@example.com"]
    dev, ops = msgs
    assert [line.issue_id for line in dev.lines] == [1, 2]  # most events first, each once
    assert dev.lines[0].count == 17000 and dev.lines[0].kinds == ("first_seen", "every_event")
    assert dev.lines[0].notifications == 501
    assert ops.lines[0].kinds == ("first_seen",) and ops.lines[0].notifications == 1
    assert dev.subject == "[api] 2 issues"
    assert dev.text.count("KeyError: 'x'") == 1 and "17000 events" in dev.text
    payload = dev.as_payload()
    assert payload["to"] == "dev@example.com" and [i["issue_id"] for i in payload["issues"]] == [1, 2]


def test_build_digest_project_level_spike_and_removed_rule() -> None:
    msgs = build_digest("api", [RecordFacts(7, 0, "spike", {"count": 1234}), RecordFacts(99, 5, "first_seen")], {}, {7: ["a@example.com"]})
    assert len(msgs) == 1 and msgs[0].lines[0].title == "Event volume spike" and msgs[0].lines[0].count == 1234
