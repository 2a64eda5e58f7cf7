"""JSON as old clients write it: orjson first (fast, strict), then the standard library, which
also reads ``NaN``, ``Infinity`` and ``-Infinity`` (Python's ``json.dumps`` default, so old raven
clients sent them). Both raise ``ValueError`` subclasses on garbage."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads_tolerant(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = bytes(raw) if isinstance(raw, (bytearray, memoryview)) else raw
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 ({exc.reason})") from None
