"""Pure presentation helpers for the console templates: sparklines, relative times, numbers.

No I/O: given data, return strings (or :class:`markupsafe.Markup` for inline SVG built only from
numbers, so nothing user-supplied reaches it unescaped).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup


def sparkline(counts: list[int], *, width: int = 120, height: int = 24) -> Markup:
    """An inline SVG bar chart, one bar per bucket, scaled to the largest bucket."""
    n = max(len(counts), 1)
    peak = max(counts, default=0) or 1
    bar = width / n
    rects = []
    for i, c in enumerate(counts):
        h = 0.0 if c == 0 else max(1.5, (height - 2) * c / peak)
        rects.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}">'
                     f"<title>{int(c)}</title></rect>")
    total = sum(counts)
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{int(total)} events in the last {len(counts)} hours">{"".join(rects)}</svg>'
    )


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def ago(value: str | float | None, now: datetime | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' from an ISO time or epoch seconds."""
    if value is None or value == "":
        return "-"
    t = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else parse_iso(value)
    if t is None:
        return "-"
    secs = ((now or datetime.now(UTC)) - t).total_seconds()
    future = secs < 0
    secs = abs(secs)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            text = f"{int(secs // size)}{unit}"
            break
    else:
        text = f"{int(secs)}s"
    return f"in {text}" if future else f"{text} ago"


def num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def frames_newest_first(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored frames are oldest call first (as SDKs send them); the console shows the newest first."""
    return list(reversed(frames))


FILTERS = {"spark": sparkline, "ago": ago, "num": num, "pretty": pretty, "newest_first": frames_newest_first}
