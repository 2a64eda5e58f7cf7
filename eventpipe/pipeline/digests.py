"""Digests: many notifications of a project become one email per recipient per digest window.

The schedule follows the reference system's timelines (pure functions here, state in SQL):

* an idle project (no timeline) that gets a notification is **ready** at once: the first
  notification after a quiet period is not delayed;
* delivering a digest leaves the timeline **waiting** until ``now + minimum_delay``;
* each batch of notifications added while waiting pushes the due time by ``minimum_delay``, never past
  ``last_processed + maximum_delay``, so a steady flood yields a digest every ``maximum_delay``;
* a delivery that finds nothing to send makes the timeline idle again.

So a flood of events of a few issues is a handful of emails, each listing an issue once with its
event count. No I/O here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Timeline:
    state: str  # "ready" | "waiting"
    due_at: datetime
    last_processed_at: datetime | None


def on_add(current: Timeline | None, now: datetime, minimum_delay: float, maximum_delay: float) -> Timeline:
    """The timeline after a notification is added at ``now``."""
    if current is None:
        return Timeline("ready", now, None)
    if current.state != "waiting":
        return current
    pushed = current.due_at + timedelta(seconds=minimum_delay)
    if current.last_processed_at is None:
        return Timeline("waiting", min(current.due_at, now), None)
    cap = current.last_processed_at + timedelta(seconds=maximum_delay)
    return Timeline("waiting", min(pushed, cap), current.last_processed_at)


def on_deliver(now: datetime, minimum_delay: float, *, delivered: int, still_pending: int) -> Timeline | None:
    """The timeline after a digest took ``delivered`` records (``still_pending`` arrived meanwhile).
    ``None``: idle, the row is removed."""
    if delivered == 0 and still_pending == 0:
        return None
    return Timeline("waiting", now + timedelta(seconds=minimum_delay), now)


def is_due(t: Timeline, now: datetime) -> bool:
    return t.due_at <= now


@dataclass(frozen=True)
class RecordFacts:
    """A digest record as the builder needs it."""

    rule_id: int
    issue_id: int
    kind: str  # first_seen | regression | every_event | frequency | spike | resolved | merged …
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IssueFacts:
    id: int
    title: str
    culprit: str
    level: str
    status: str
    count: int  # events of the issue


@dataclass(frozen=True)
class DigestLine:
    issue_id: int
    title: str
    culprit: str
    level: str
    status: str
    count: int
    kinds: tuple[str, ...]
    notifications: int


@dataclass(frozen=True)
class DigestMessage:
    recipient: str
    subject: str
    text: str
    lines: tuple[DigestLine, ...]

    def as_payload(self) -> dict[str, Any]:
        return {
            "to": self.recipient,
            "subject": self.subject,
            "text": self.text,
            "issues": [line.__dict__ | {"kinds": list(line.kinds)} for line in self.lines],
        }


def build_digest(
    project_name: str,
    records: Sequence[RecordFacts],
    issues: Mapping[int, IssueFacts],
    recipients_by_rule: Mapping[int, Sequence[str]],
) -> list[DigestMessage]:
    """One message per recipient, listing each issue once (most events first) with its count,
    the kinds of notification it had in this window and how many."""
    by_recipient: dict[str, dict[int, list[RecordFacts]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for rcpt in recipients_by_rule.get(rec.rule_id, ()):
            by_recipient[rcpt][rec.issue_id].append(rec)
    messages = []
    for rcpt in sorted(by_recipient):
        lines = [_line(issue_id, recs, issues.get(issue_id)) for issue_id, recs in by_recipient[rcpt].items()]
        lines.sort(key=lambda line: (-line.count, line.issue_id))
        messages.append(DigestMessage(rcpt, _subject(project_name, lines), _text(project_name, lines), tuple(lines)))
    return messages


def _line(issue_id: int, recs: Iterable[RecordFacts], issue: IssueFacts | None) -> DigestLine:
    recs = list(recs)
    kinds = tuple(dict.fromkeys(r.kind for r in recs))
    if issue is None:  # project-level (spike) or a deleted issue
        count = max((int(r.detail.get("count", 0)) for r in recs), default=0)
        title = "Event volume spike" if "spike" in kinds else f"issue {issue_id} (deleted)"
        return DigestLine(issue_id, title, "", "error", "", count, kinds, len(recs))
    return DigestLine(issue.id, issue.title, issue.culprit, issue.level, issue.status, issue.count, kinds, len(recs))


def _subject(project_name: str, lines: Sequence[DigestLine]) -> str:
    if len(lines) == 1:
        return f"[{project_name}] {lines[0].title}"[:200]
    return f"[{project_name}] {len(lines)} issues"


def _text(project_name: str, lines: Sequence[DigestLine]) -> str:
    out = [f"Notifications for project {project_name}:", ""]
    for line in lines:
        what = ", ".join(k.replace("_", " ") for k in line.kinds)
        out.append(f"- {line.title} ({line.count} events; {what})")
        if line.culprit:
            out.append(f"    in {line.culprit}")
        out.append(f"    issue {line.issue_id}, {line.level}, {line.status or 'n/a'}")
    out.append("")
    return "\n".join(out)


def webhook_body(project_id: int, rule_id: int, kind: str, issue: IssueFacts | None, ref: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON a webhook receives for one notification."""
    body: dict[str, Any] = {"project_id": project_id, "rule_id": rule_id, "kind": kind, "ref": ref, "detail": dict(detail)}
    if issue is not None:
        body["issue"] = {
            "id": issue.id,
            "title": issue.title,
            "culprit": issue.culprit,
            "level": issue.level,
            "status": issue.status,
            "count": issue.count,
        }
    return body
