"""The weekly project report: new issues, resolved issues, top issues and event volume. No I/O:
the reports tasks gather the numbers (volume and top issues from rollups) and this renders them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class IssueLine:
    id: int
    title: str
    count: int


@dataclass(frozen=True)
class WeeklyReport:
    project_id: int
    project_name: str
    start: datetime
    end: datetime
    new_issues: tuple[IssueLine, ...]
    resolved_issues: tuple[IssueLine, ...]
    top_issues: tuple[IssueLine, ...]
    volume_by_day: tuple[tuple[datetime, int], ...]

    @property
    def total_events(self) -> int:
        return sum(c for _, c in self.volume_by_day)

    def subject(self) -> str:
        return f"[{self.project_name}] weekly report {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}: {self.total_events} events"

    def text(self) -> str:
        out = [self.subject(), ""]
        out.append(f"Events: {self.total_events}")
        out += [f"  {day:%a %Y-%m-%d}: {count}" for day, count in self.volume_by_day]
        for heading, lines in (("New issues", self.new_issues), ("Resolved issues", self.resolved_issues), ("Top issues", self.top_issues)):
            out += ["", f"{heading}: {len(lines)}"]
            out += [f"  #{line.id} {line.title} ({line.count} events)" for line in lines]
        out.append("")
        return "\n".join(out)

    def as_payload(self, recipient: str) -> dict[str, Any]:
        return {
            "to": recipient,
            "subject": self.subject(),
            "text": self.text(),
            "total_events": self.total_events,
            "new_issues": [line.__dict__ for line in self.new_issues],
            "resolved_issues": [line.__dict__ for line in self.resolved_issues],
            "top_issues": [line.__dict__ for line in self.top_issues],
        }


def fill_days(start: datetime, days: int, counts: dict[datetime, int]) -> tuple[tuple[datetime, int], ...]:
    """Every day of the period, zero where the rollups have no row."""
    from datetime import timedelta

    return tuple((start + timedelta(days=i), counts.get(start + timedelta(days=i), 0)) for i in range(days))


def top(lines: Sequence[IssueLine], n: int = 5) -> tuple[IssueLine, ...]:
    return tuple(sorted(lines, key=lambda line: (-line.count, line.id))[:n])
