"""Size limits for the oversized parts of an event, as the reference system applies them.

Why: one pathological event (a 10,000-frame recursion, a local variable holding a 5 MB string,
a thousand breadcrumbs) must cost bounded work and storage, and the rest of the event must
survive. Sentry trims instead of rejecting: frame variables and other data bags are cut to a
depth, a number of items and a size budget (``sentry/utils/safe.py`` ``trim``, relay's databag
sizes), strings in variables to 512 characters, breadcrumbs to the latest 100, stack traces to
250 frames keeping the head and the tail, and only the 50 frames nearest the ends keep their
source context and variables. Each cut is recorded in the event's ``errors`` list as
``{"type": ..., "name": path}`` so the user can see what was removed; that list is bounded too.

Pure: takes a normalized event, returns the trimmed event. Parts that need no trimming are
shared with the input, never copied, and the input is not mutated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_BREADCRUMBS = 100
MAX_FRAMES = 250  # beyond this, frames are dropped from the middle
FRAMES_WITH_DATA = 50  # beyond this, middle frames lose context lines and variables
MAX_TRIM_ERRORS = 50
_FRAME_DATA_KEYS = ("pre_context", "context_line", "post_context", "vars")

VALUE_TOO_LONG = "value_too_long"
TOO_MANY_ITEMS = "too_many_items"
TOO_DEEP = "too_deep"
DEPTH_MARKER = "[depth limit]"


@dataclass(frozen=True)
class Bag:
    """Limits for one data bag: nesting depth, items per container, characters per string and
    a budget for the whole bag (characters of keys and strings plus a little per value)."""

    depth: int
    items: int
    string: int
    budget: int


# relay's databag sizes: medium (depth 5, 2 KB), large (depth 7, 8 KB), larger (depth 7, 16 KB);
# Sentry's 512-character variable size and 50 items per dictionary.
FRAME_VARS = Bag(depth=5, items=50, string=512, budget=2048)
BREADCRUMB_DATA = Bag(depth=5, items=50, string=512, budget=2048)
BAGS: dict[str, Bag] = {
    "extra": Bag(depth=7, items=200, string=8192, budget=16384),
    "request": Bag(depth=7, items=200, string=8192, budget=16384),
    "contexts": Bag(depth=7, items=200, string=8192, budget=8192),
    "user": Bag(depth=5, items=50, string=2048, budget=4096),
}


class _Errors:
    def __init__(self, existing: list[Any]) -> None:
        self.items = list(existing)
        self.added = 0

    def add(self, kind: str, name: str) -> None:
        if self.added < MAX_TRIM_ERRORS:
            self.items.append({"type": kind, "name": name})
        elif self.added == MAX_TRIM_ERRORS:
            self.items.append({"type": TOO_MANY_ITEMS, "name": "errors"})
        self.added += 1


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def trim_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` within the limits above; the same object when nothing needed trimming."""
    errors = _Errors(event.get("errors") or [])
    out = dict(event)
    for field, bag in BAGS.items():
        if field in out:
            out[field] = _trim(out[field], field, 0, bag, _Budget(bag.budget), errors)
    crumbs = out.get("breadcrumbs")
    if isinstance(crumbs, list):
        out["breadcrumbs"] = _trim_breadcrumbs(crumbs, errors)
    exceptions = out.get("exception")
    if isinstance(exceptions, list):
        new = [_trim_exception(exc, f"exception.{i}", errors) for i, exc in enumerate(exceptions)]
        if any(a is not b for a, b in zip(new, exceptions)):
            out["exception"] = new
    if not errors.added:
        return event
    out["errors"] = errors.items
    return out


def _trim_breadcrumbs(crumbs: list[Any], errors: _Errors) -> list[Any]:
    new = crumbs
    if len(crumbs) > MAX_BREADCRUMBS:
        errors.add(TOO_MANY_ITEMS, "breadcrumbs")
        new = crumbs[-MAX_BREADCRUMBS:]  # the latest ones explain the error
    offset = len(crumbs) - len(new)
    trimmed: list[Any] | None = None
    for i, crumb in enumerate(new):
        if isinstance(crumb, dict) and "data" in crumb:
            data = _trim(crumb["data"], f"breadcrumbs.{i + offset}.data", 0, BREADCRUMB_DATA,
                         _Budget(BREADCRUMB_DATA.budget), errors)
            if data is not crumb["data"]:
                if trimmed is None:
                    trimmed = list(new)
                trimmed[i] = {**crumb, "data": data}
    return trimmed if trimmed is not None else new


def _trim_exception(exc: Any, path: str, errors: _Errors) -> Any:
    if not isinstance(exc, dict) or not isinstance(exc.get("frames"), list):
        return exc
    frames: list[Any] = exc["frames"]
    new = frames
    if len(frames) > MAX_FRAMES:
        errors.add(TOO_MANY_ITEMS, f"{path}.frames")
        half = MAX_FRAMES // 2
        new = frames[:half] + frames[-half:]
    with_data = [i for i, f in enumerate(new) if isinstance(f, dict) and any(k in f for k in _FRAME_DATA_KEYS)]
    if len(with_data) > FRAMES_WITH_DATA:
        half = FRAMES_WITH_DATA // 2
        new = list(new) if new is frames else new
        for i in with_data[half:-half]:
            new[i] = {k: v for k, v in new[i].items() if k not in _FRAME_DATA_KEYS}
        errors.add(TOO_MANY_ITEMS, f"{path}.frames.data")
    trimmed: list[Any] | None = None
    for i, frame in enumerate(new):
        if isinstance(frame, dict) and "vars" in frame:
            vars_ = _trim(frame["vars"], f"{path}.frames.{i}.vars", 0, FRAME_VARS, _Budget(FRAME_VARS.budget), errors)
            if vars_ is not frame["vars"]:
                if trimmed is None:
                    trimmed = list(new)
                trimmed[i] = {**frame, "vars": vars_}
    if trimmed is not None:
        new = trimmed
    return exc if new is frames else {**exc, "frames": new}


def _trim(value: Any, path: str, depth: int, bag: Bag, budget: _Budget, errors: _Errors, key: object = None) -> Any:
    """One value of a bag, charged to its budget. Containers past the depth become a marker;
    items past the item limit or the budget are dropped; strings are cut to what is left.
    ``path`` names the parent when ``key`` is given (built only when needed: most values pass)."""
    kind = type(value)
    if kind is str:
        limit = min(bag.string, max(budget.left, 0))
        if len(value) > limit:
            errors.add(VALUE_TOO_LONG, path if key is None else f"{path}.{key}")
            value = value[: max(limit - 1, 0)] + "…" if limit else ""
        budget.left -= len(value) + 2
        return value
    if kind is not dict and kind is not list:
        budget.left -= 4
        return value
    if key is not None:
        path = f"{path}.{key}"
    if depth >= bag.depth:
        errors.add(TOO_DEEP, path)
        budget.left -= len(DEPTH_MARKER) + 2
        return DEPTH_MARKER
    budget.left -= 2
    changed = False
    if kind is dict:
        out: dict[str, Any] = {}
        for n, (name, item) in enumerate(value.items()):
            if n >= bag.items or budget.left <= 0:
                errors.add(TOO_MANY_ITEMS if n >= bag.items else VALUE_TOO_LONG, path)
                changed = True
                break
            budget.left -= len(name) + 3
            item_kind = type(item)
            if item_kind is str and len(item) <= bag.string and len(item) <= budget.left:
                budget.left -= len(item) + 2  # the common case, inlined: a short string
                out[name] = item
                continue
            if item_kind is int or item_kind is float or item_kind is bool or item is None:
                budget.left -= 4
                out[name] = item
                continue
            new = _trim(item, path, depth + 1, bag, budget, errors, name)
            changed = changed or new is not item
            out[name] = new
        return out if changed else value
    items: list[Any] = []
    for n, item in enumerate(value):
        if n >= bag.items or budget.left <= 0:
            errors.add(TOO_MANY_ITEMS if n >= bag.items else VALUE_TOO_LONG, path)
            changed = True
            break
        item_kind = type(item)
        if item_kind is str and len(item) <= bag.string and len(item) <= budget.left:
            budget.left -= len(item) + 2
            items.append(item)
            continue
        if item_kind is int or item_kind is float or item_kind is bool or item is None:
            budget.left -= 4
            items.append(item)
            continue
        new = _trim(item, path, depth + 1, bag, budget, errors, n)
        changed = changed or new is not item
        items.append(new)
    return items if changed else value
