"""Every scenario by name, in the order a full run takes them."""

from __future__ import annotations

from collections.abc import Callable

from .r7_disk_full import r7_disk_full
from .r8_schedulers import r8_schedulers
from .scenarios import SCENARIOS as _BASE
from .scenarios import Row, World

SCENARIOS: dict[str, Callable[[World], Row]] = dict(
    sorted({**_BASE, "R7": r7_disk_full, "R8": r8_schedulers}.items(), key=lambda kv: int(kv[0][1:]))
)

__all__ = ["SCENARIOS"]
