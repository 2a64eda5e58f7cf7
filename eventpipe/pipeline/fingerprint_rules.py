"""Server-side fingerprint rules: a project's own say in which events form one issue.

The syntax follows the reference system's fingerprinting rules, one rule a line::

    # comments start with '#'
    error.type:ConnectionError -> connection-errors
    type:DatabaseError value:"*connection refused*" -> db-down, {{ default }}
    stack.function:checkout* !level:warning -> checkout, {{ error.type }} title="Checkout failed"
    tags.server_name:db-* message:"*timeout*" -> db-timeouts

Left of ``->``: matchers ``[!]key:pattern`` (all must match; ``!`` negates), patterns are globs
(``*``, ``?``, ``[abc]``; in paths ``*`` stops at ``/`` and ``**`` crosses it), quoted with ``"…"``
when they hold spaces. Right of it: the fingerprint, comma or space separated values; ``{{ default }}``
keeps the default grouping as a component, other ``{{ variables }}`` take the event's value;
an optional ``title="…"`` names the issue. The first rule that matches wins.

Matchers of one kind match one and the same thing: ``type:A value:B`` needs one exception that is
both, ``module:M function:F`` one frame that is both. This module is pure (no I/O): parsing,
matching and the resulting fingerprint; storage and versions live in eventpipe.metadata.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eventpipe.pipeline.grouping import DEFAULT_MARKER, fingerprint_hash

# Every accepted matcher key (long and short spellings) -> the canonical key.
MATCHER_KEYS: dict[str, str] = {
    "error.type": "type",
    "error.value": "value",
    "stack.module": "module",
    "stack.abs_path": "path",
    "stack.package": "package",
    "stack.function": "function",
    "type": "type",
    "value": "value",
    "module": "module",
    "path": "path",
    "package": "package",
    "function": "function",
    "app": "app",
    "message": "message",
    "logger": "logger",
    "level": "level",
    "release": "release",
    "sdk": "sdk",
}

# What each canonical key matches against: one exception, one frame, or the event as a whole.
_SCOPE = {
    "type": "exception",
    "value": "exception",
    "module": "frame",
    "path": "frame",
    "package": "frame",
    "function": "frame",
    "app": "frame",
}
_CASE_INSENSITIVE = {"value", "message", "level", "path", "package", "logger"}
_PATH_LIKE = {"path", "package"}


class RulesSyntaxError(ValueError):
    """A rules file that does not parse; ``line`` is 1-based."""

    def __init__(self, line: int, text: str, reason: str) -> None:
        super().__init__(f"line {line}: {reason}: {text.strip()!r}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Matcher:
    key: str  # canonical key, or "tags.NAME"
    pattern: str
    negated: bool = False

    @property
    def scope(self) -> str:
        return _SCOPE.get(self.key, "event")

    def text(self) -> str:
        return f'{"!" if self.negated else ""}{self.key}:"{self.pattern}"'


@dataclass(frozen=True)
class Rule:
    matchers: tuple[Matcher, ...]
    fingerprint: tuple[str, ...]
    title: str | None = None

    def text(self) -> str:
        fp = ", ".join(_quote_fp(p) for p in self.fingerprint)
        title = f' title="{_escape(self.title)}"' if self.title else ""
        return f"{' '.join(m.text() for m in self.matchers)} -> {fp}{title}"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "matchers": [[("!" if m.negated else "") + m.key, m.pattern] for m in r.matchers],
                "fingerprint": list(r.fingerprint),
                "title": r.title,
            }
            for r in self.rules
        ]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> RuleSet:
        rules = []
        for r in data:
            matchers = tuple(
                Matcher(key.lstrip("!"), pattern, key.startswith("!")) for key, pattern in r["matchers"]
            )
            rules.append(Rule(matchers, tuple(r["fingerprint"]), r.get("title")))
        return cls(tuple(rules))


@dataclass(frozen=True)
class RuleMatch:
    rule: Rule
    fingerprint: list[str]  # variables resolved, ``{{ default }}`` kept for the grouping step
    title: str | None


# Parsing ------------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<arrow>->)
      | (?P<matcher>(?P<neg>!)?(?P<key>"[A-Za-z0-9_.:-]+"|[A-Za-z0-9_.-]+):(?P<arg>"(?:[^"\\]|\\.)*"|\S+))
    )""",
    re.X,
)
_FP_TOKEN = re.compile(
    r"""\s*(?:
        (?P<attr>(?P<akey>[A-Za-z_]+)=(?P<aval>"(?:[^"\\]|\\.)*"))
      | (?P<quoted>"(?:[^"\\]|\\.)*")
      | (?P<var>\{\{\s*[^\s}]+\s*\}\})
      | (?P<bare>[^\s{,"]+)
    )\s*,?""",
    re.X,
)
_VARIABLE = re.compile(r"^\{\{\s*([^\s}]+)\s*\}\}$")


def parse_rules(text: str) -> RuleSet:
    """Parse a rules file; raises :class:`RulesSyntaxError` naming the first bad line."""
    rules = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        rules.append(_parse_line(lineno, line))
    return RuleSet(tuple(rules))


def _parse_line(lineno: int, line: str) -> Rule:
    matchers: list[Matcher] = []
    pos = 0
    while True:
        m = _TOKEN.match(line, pos)
        if m is None:
            raise RulesSyntaxError(lineno, line, f"expected a matcher like 'type:ValueError' or '->' at column {pos + 1}")
        pos = m.end()
        if m.group("arrow"):
            break
        key = m.group("key").strip('"')
        canonical = MATCHER_KEYS.get(key)
        if canonical is None and not (key.startswith("tags.") and len(key) > 5):
            known = ", ".join(sorted(MATCHER_KEYS)) + ", tags.NAME"
            raise RulesSyntaxError(lineno, line, f"unknown matcher {key!r} (known: {known})")
        matchers.append(Matcher(canonical or key, _unquote(m.group("arg")), bool(m.group("neg"))))
    if not matchers:
        raise RulesSyntaxError(lineno, line, "a rule needs at least one matcher before '->'")
    fingerprint: list[str] = []
    title: str | None = None
    rest = line[pos:]
    pos = 0
    while rest[pos:].strip():
        m = _FP_TOKEN.match(rest, pos)
        if m is None or m.end() == pos:
            raise RulesSyntaxError(lineno, line, f"cannot read the fingerprint after '->' near {rest[pos:].strip()[:20]!r}")
        pos = m.end()
        if m.group("attr"):
            if m.group("akey") != "title":
                raise RulesSyntaxError(lineno, line, f"unknown attribute {m.group('akey')!r} (only title=\"…\")")
            title = _unquote(m.group("aval"))
        elif m.group("var"):
            fingerprint.append(_normalize_variable(m.group("var")))
        else:
            fingerprint.append(_unquote(m.group("quoted") or m.group("bare")))
    if not fingerprint:
        raise RulesSyntaxError(lineno, line, "a rule needs a fingerprint after '->', e.g. '-> my-group'")
    return Rule(tuple(matchers), tuple(fingerprint), title)


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] == '"':
        return re.sub(r"\\(.)", r"\1", arg[1:-1])
    return arg


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote_fp(part: str) -> str:
    if _VARIABLE.match(part) or re.fullmatch(r"[^\s{,\"=]+", part):
        return part
    return f'"{_escape(part)}"'


def _normalize_variable(var: str) -> str:
    name = _VARIABLE.match(var).group(1)  # type: ignore[union-attr]
    return DEFAULT_MARKER if name == "default" else "{{ %s }}" % name


# Matching -----------------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _glob(pattern: str, path: bool, ignorecase: bool) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if path and pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*" if path else ".*")
        elif c == "?":
            out.append("[^/]" if path else ".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S | (re.I if ignorecase else 0))


def glob_match(value: str, pattern: str, *, path: bool = False, ignorecase: bool = False) -> bool:
    if path:
        value = value.replace("\\", "/")
    return _glob(pattern, path, ignorecase).fullmatch(value) is not None


def _frames(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for exc in event.get("exception") or []:
        yield from exc.get("frames") or []


def _messages(event: Mapping[str, Any]) -> list[str]:
    out = [event.get("message") or ""]
    logentry = event.get("logentry") or {}
    if logentry.get("message"):
        out.append(logentry["message"])
    out.extend(str(exc.get("value") or "") for exc in event.get("exception") or [])
    return [m for m in out if m]


def _tag(event: Mapping[str, Any], name: str) -> str | None:
    tags = event.get("tags") or []
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    for key, value in pairs:
        if key == name:
            return str(value)
    return None


def _matches_value(m: Matcher, value: str | None) -> bool:
    if value is None:
        return False
    if m.key in _PATH_LIKE:
        return glob_match(value, m.pattern, path=True, ignorecase=True) or (
            not value.startswith("/") and glob_match("/" + value, m.pattern, path=True, ignorecase=True)
        )
    return glob_match(value, m.pattern, ignorecase=m.key in _CASE_INSENSITIVE)


def _positive(m: Matcher, event: Mapping[str, Any], item: Mapping[str, Any] | None) -> bool:
    """Does ``m`` (not negated) hold for this exception/frame ``item`` or the event?"""
    k = m.key
    if k in ("type", "value", "module", "function"):
        return _matches_value(m, _str(item.get(k)) if item else None)
    if k == "path":
        return bool(item) and any(
            _matches_value(m, _str(item.get(f))) for f in {"abs_path", "filename"} if item.get(f)  # type: ignore[union-attr]
        )
    if k == "package":
        return _matches_value(m, _str(item.get("package")) if item else None)
    if k == "app":
        want = m.pattern.strip().lower() in ("1", "true", "yes", "on")
        return bool(item) and bool(item.get("in_app")) == want  # type: ignore[union-attr]
    if k == "message":
        return any(_matches_value(m, text) for text in _messages(event))
    if k == "sdk":
        return _matches_value(m, _str((event.get("sdk") or {}).get("name")))
    if k.startswith("tags."):
        return _matches_value(m, _tag(event, k[5:]))
    return _matches_value(m, _str(event.get(k)))  # level, logger, release


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _holds(m: Matcher, event: Mapping[str, Any], item: Mapping[str, Any] | None) -> bool:
    return _positive(m, event, item) != m.negated


def rule_matches(rule: Rule, event: Mapping[str, Any]) -> bool:
    by_scope: dict[str, list[Matcher]] = {}
    for m in rule.matchers:
        by_scope.setdefault(m.scope, []).append(m)
    for scope, matchers in by_scope.items():
        if scope == "event":
            if not all(_holds(m, event, None) for m in matchers):
                return False
            continue
        items: Iterable[Mapping[str, Any]] = (event.get("exception") or []) if scope == "exception" else _frames(event)
        if not any(all(_holds(m, event, item) for m in matchers) for item in items):
            return False
    return True


def match(event: Mapping[str, Any], rules: RuleSet) -> RuleMatch | None:
    """The first rule that matches the (normalized) event, with its fingerprint's variables filled in."""
    for rule in rules.rules:
        if rule_matches(rule, event):
            return RuleMatch(rule, [_resolve(part, event) for part in rule.fingerprint], rule.title)
    return None


def fingerprint_for(event: Mapping[str, Any], rules: RuleSet) -> list[str] | None:
    """The fingerprint the project's rules give this event, or None when no rule matches (then the
    event's own fingerprint or the default grouping applies). ``{{ default }}`` stays in the list:
    :func:`eventpipe.pipeline.grouping.fingerprint_components` expands it."""
    found = match(event, rules)
    return None if found is None else found.fingerprint


def grouping_hash(event: Mapping[str, Any], rules: RuleSet) -> str:
    """The hash an event is grouped by under ``rules``: a matching rule replaces the event's own
    fingerprint (as server-side rules do in the reference system); the event is not changed."""
    fp = fingerprint_for(event, rules) if rules else None
    if fp is None:
        return fingerprint_hash(dict(event))
    return fingerprint_hash({**event, "fingerprint": fp})


def _resolve(part: str, event: Mapping[str, Any]) -> str:
    var = _VARIABLE.match(part)
    if var is None or part == DEFAULT_MARKER:
        return part
    name = var.group(1)
    exceptions = event.get("exception") or []
    last = exceptions[-1] if exceptions else {}
    frame = next((f for f in reversed(list(_frames(event))) if f.get("in_app")), None) or next(
        iter(reversed(list(_frames(event)))), {}
    )
    values: dict[str, Any] = {
        "type": last.get("type"),
        "error.type": last.get("type"),
        "value": last.get("value"),
        "error.value": last.get("value"),
        "function": frame.get("function"),
        "stack.function": frame.get("function"),
        "module": frame.get("module"),
        "stack.module": frame.get("module"),
        "path": frame.get("abs_path") or frame.get("filename"),
        "stack.abs_path": frame.get("abs_path") or frame.get("filename"),
        "level": event.get("level"),
        "logger": event.get("logger"),
        "message": event.get("message"),
        "transaction": event.get("transaction"),
        "release": event.get("release"),
    }
    if name.startswith("tags."):
        value = _tag(event, name[5:])
    else:
        value = values.get(name)
    return f"<no-value-for-{name}>" if value in (None, "") else str(value)


def rules_digest(text: str) -> str:
    """A short content hash of a rules file (shown with each stored version)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
