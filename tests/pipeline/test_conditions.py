"""Alert rule conditions and the throttle decision (pure logic)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eventpipe.pipeline.conditions import (
    Condition,
    RuleError,
    level_passes,
    matches,
    parse_level,
    parse_when,
    spike_exceeded,
    throttle_allows,
)


def test_parse_when_forms() -> None:
    assert parse_when("first_seen") == Condition("first_seen")
    assert parse_when("first-seen") == Condition("first_seen")
    assert parse_when("frequency:100/5") == Condition("frequency", 100, 5)
    assert str(parse_when("spike:1000/60")) == "spike:1000/60"
    with pytest.raises(RuleError, match="at least 1"):
        parse_when("frequency:0/5")
    for bad in ("sometimes", "frequency:5", "frequency:a/b"):
        with pytest.raises(RuleError, match="first_seen"):
            parse_when(bad)


def test_parse_level() -> None:
    assert parse_level("WARN") == "warning"
    assert parse_level(None) is None
    with pytest.raises(RuleError, match="fatal"):
        parse_level("loud")


def test_matches_by_kind_level_and_window() -> None:
    first = Condition("first_seen")
    assert matches(first, None, kinds=["first_seen"], level="error")
    assert not matches(first, None, kinds=["regression"], level="error")
    assert not matches(first, "fatal", kinds=["first_seen"], level="error")
    assert matches(Condition("regression"), "warning", kinds=["regression"], level="error")
    assert matches(Condition("every_event"), None, kinds=[], level="info")
    freq = Condition("frequency", 10, 5)
    assert not matches(freq, None, kinds=[], level="error", window_count=9)
    assert matches(freq, None, kinds=[], level="error", window_count=10)
    assert not matches(Condition("spike", 1, 1), None, kinds=["first_seen"], level="error")


def test_level_order() -> None:
    assert level_passes("warning", "error") and level_passes("warning", "warning")
    assert not level_passes("warning", "info")
    assert level_passes("error", "something-odd")  # unknown levels count as error


def test_spike_and_throttle() -> None:
    assert spike_exceeded(Condition("spike", 100, 5), 100)
    assert not spike_exceeded(Condition("spike", 100, 5), 99)
    now = datetime(2026, 1, 1, 12, 0)
    assert throttle_allows(None, now, 30)
    assert not throttle_allows(now - timedelta(minutes=29), now, 30)
    assert throttle_allows(now - timedelta(minutes=30), now, 30)
    assert throttle_allows(now, now, 0)
