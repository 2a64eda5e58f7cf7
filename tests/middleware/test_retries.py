"""Retry budget: outages retry by time, other errors by count (embedded broker, no services)."""

from __future__ import annotations

from eventpipe.kvstore import KVUnavailable
from eventpipe.tasks.api import task

CALLS: dict[str, int] = {}


@task("unit.outage", queue="unit", max_retries=2, min_backoff_ms=1, max_backoff_ms=2)
def outage(rt, *, key: str, fail: int) -> None:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] <= fail:
        raise KVUnavailable("store down")


@task("unit.bug", queue="unit", max_retries=2, min_backoff_ms=1, max_backoff_ms=2)
def bug(rt, *, key: str) -> None:
    CALLS[key] = CALLS.get(key, 0) + 1
    raise ValueError("a bug")


def test_outages_outlast_max_retries_but_bugs_do_not(make_runtime, monkeypatch):
    import eventpipe.middleware.retries as mw

    monkeypatch.setattr(mw, "OUTAGE_MAX_BACKOFF_MS", 5)
    rt = make_runtime()
    rt.enqueue("unit.outage", key="o", fail=6)  # 6 outage failures > max_retries=2
    rt.enqueue("unit.bug", key="b")
    rt.broker.run_until_idle()
    assert CALLS["o"] == 7, "kept retrying through the outage, then succeeded"
    assert CALLS["b"] == 3, "a bug is retried max_retries times, then dead-lettered"
    from sqlalchemy import select

    from eventpipe.metadata.models import DeadLetter

    with rt.db.session() as s:
        letters = s.execute(select(DeadLetter.task, DeadLetter.reason, DeadLetter.attempts)).all()
    assert [(t, a) for t, _, a in letters] == [("unit.bug", 3)]
    assert "ValueError: a bug" in letters[0].reason
