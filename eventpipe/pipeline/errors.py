"""The one error type pure pipeline code raises for bad input."""

from __future__ import annotations

from eventpipe.errors import EventpipeError


class InvalidEvent(EventpipeError, ValueError):
    """An event that cannot be accepted. ``reason`` is a stable code for counting, ``field`` the
    JSON path that was wrong; the message says what was expected."""

    def __init__(self, reason: str, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail
