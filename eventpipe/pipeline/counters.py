"""Folding buffered increments into per-issue totals. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class IssueTotal:
    count: int
    first_seen: datetime
    last_seen: datetime


def fold_increments(rows: Iterable[tuple[int, int, datetime]]) -> dict[int, IssueTotal]:
    """(issue_id, delta, seen_at) rows -> per-issue count and first/last seen."""
    out: dict[int, IssueTotal] = {}
    for issue_id, delta, seen_at in rows:
        total = out.get(issue_id)
        if total is None:
            out[issue_id] = IssueTotal(delta, seen_at, seen_at)
        else:
            total.count += delta
            total.first_seen = min(total.first_seen, seen_at)
            total.last_seen = max(total.last_seen, seen_at)
    return out
