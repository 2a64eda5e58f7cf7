"""The one error root: every error eventpipe raises on purpose is an :class:`EventpipeError`.

``retryable`` says whether trying again later can succeed (an outage) or not (bad input, a bug);
the retry middleware reads it instead of keeping a list of types. ``exit_code`` is what the CLI
exits with when the error reaches it.
"""

from __future__ import annotations

from typing import ClassVar


class EventpipeError(Exception):
    """Root of eventpipe's errors."""

    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1


class UnknownTask(EventpipeError, LookupError):
    """No task of that name is declared in this process."""

    exit_code: ClassVar[int] = 2

    def __init__(self, name: str) -> None:
        super().__init__(f"no task named {name!r}; see `eventpipe tasks list` (is its module in EVENTPIPE_TASK_MODULES?)")
        self.name = name


class UnknownJob(EventpipeError, LookupError):
    """No periodic job of that name is declared."""

    exit_code: ClassVar[int] = 2

    def __init__(self, name: str) -> None:
        super().__init__(f"no periodic job named {name!r}; see `eventpipe schedules list`")
        self.name = name
