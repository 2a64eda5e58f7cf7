"""The root of every error eventpipe raises on purpose.

Each class says two things about itself, so callers need no list of types:

* ``retryable``: an outage that may pass (a server down, a timeout). The retry middleware retries
  these for as long as an outage may last; anything else is a bug or bad input.
* ``exit_code``: what the ``eventpipe`` command exits with when this error ends it. The CLI maps
  every :class:`EventpipeError` in one place (``eventpipe.cli._common``), printing the message and
  ``hint``, the next step for the operator.

The concrete classes stay in the modules that raise them (``eventpipe.config.ConfigError``,
``eventpipe.kvstore.base.KVError``, ``eventpipe.queues.publisher.PublishError`` ...); they subclass
:class:`EventpipeError` and keep their older bases (``ValueError``, ``RuntimeError``) so existing
``except`` clauses still match.

Also here: :func:`redact_url`, because no error message may carry a credential, and every layer
that builds one (config, the stores, the brokers) can import this module.
"""

from __future__ import annotations

import re
from typing import ClassVar

_USERINFO_RE = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"']*@")


def redact_url(text: str) -> str:
    """``scheme://user:pass@host/…`` -> ``scheme://host/…``: safe for logs, errors and JSON.

    Works on a URL and on any text that contains URLs (an Erlang error echoing a URI, a config
    error listing several), and on URLs that ``urlsplit`` cannot parse (``redis+cluster://a,b``).
    """
    return _USERINFO_RE.sub(r"\g<scheme>", text)


class EventpipeError(Exception):
    """Base class of eventpipe's errors."""

    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1
    #: the operator's next step, shown by the CLI under the message (empty: the message says it)
    hint: ClassVar[str] = ""


class UnknownTask(EventpipeError, LookupError):
    """No task is declared under this name (a typo, or its module is not in the catalogue)."""

    hint: ClassVar[str] = "`eventpipe tasks list` shows the declared tasks; extra modules go in EVENTPIPE_TASK_MODULES"

    def __init__(self, name: str) -> None:
        super().__init__(f"no task named {name!r}; see `eventpipe tasks list`")
        self.name = name

    def __str__(self) -> str:  # LookupError/KeyError would repr() the message
        return str(self.args[0])


class UnknownJob(EventpipeError, LookupError):
    """No periodic job is declared under this name."""

    hint: ClassVar[str] = "`eventpipe schedules list` shows the declared jobs"

    def __init__(self, name: str, known: list[str] | tuple[str, ...] = ()) -> None:
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no periodic job named {name!r} (known: {listed}); see `eventpipe schedules list`")
        self.name = name

    def __str__(self) -> str:
        return str(self.args[0])


__all__ = ["EventpipeError", "UnknownJob", "UnknownTask"]
