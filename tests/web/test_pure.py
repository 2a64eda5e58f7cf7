"""Pure parts of the web console: sparklines, relative times, password hashes, sign-in throttle."""

from __future__ import annotations

from datetime import UTC, datetime

from eventpipe.metadata.users import check_password, hash_password
from eventpipe.web.render import ago, sparkline
from eventpipe.web.security import LoginThrottle


def test_sparkline_scales_bars_to_the_peak_and_leaves_empty_hours_flat() -> None:
    svg = str(sparkline([0, 2, 4], width=30, height=22))
    assert svg.count("<rect") == 3
    assert 'height="20.0"' in svg  # the peak fills the height less the margin
    assert 'height="10.0"' in svg  # half the peak, half the height
    assert 'height="0.0"' in svg
    assert 'aria-label="6 events in the last 3 hours"' in svg


def test_ago_reads_iso_and_epoch_times() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert ago("2026-01-02T11:55:00Z", now) == "5m ago"
    assert ago("2026-01-01T12:00:00Z", now) == "1d ago"
    assert ago(datetime(2026, 1, 2, 14, 0, tzinfo=UTC).timestamp(), now) == "in 2h"
    assert ago(None, now) == "-"


def test_password_hash_round_trip_and_salted() -> None:
    a, b = hash_password("correct horse", n=2**10), hash_password("correct horse", n=2**10)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert check_password("correct horse", a) and check_password("correct horse", b)
    assert not check_password("Correct horse", a)
    assert not check_password("correct horse", "not-a-hash")


def test_throttle_blocks_after_the_limit_per_key_and_success_clears_the_user() -> None:
    t = LoginThrottle(limit=3, window_s=300)
    for _ in range(3):
        assert t.retry_after("ip:a", "user:x") == 0
        t.failed("ip:a", "user:x")
    assert t.retry_after("ip:a", "user:y") > 0  # the address is blocked for every name
    assert t.retry_after("ip:b", "user:x") > 0  # the name is blocked from every address
    assert t.retry_after("ip:b", "user:y") == 0
    t.succeeded("ip:a", "user:x")
    assert t.retry_after("ip:a", "user:x") == 0
