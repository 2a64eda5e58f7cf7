"""PII and secret scrubbing before a body is stored, following Sentry's default data scrubbing.

Why these rules: they are the reference system's defaults (relay's ``@common:filter`` plus the
password rule), so a user moving from Sentry sees the same ``[Filtered]`` values:

- **Keys.** A value whose key names a secret is replaced whole (containers included). Keys are
  split into words (``_``, ``-``, ``.``, spaces, camelCase), and a key is sensitive when one word
  is a secret word (``password``, ``passwd``, ``secret``, ``token``, ``auth``, ``credentials``,
  ``authorization``, ``session``, ``sessionid``, ``csrf``, ``xsrf``, ``cookie``, ``otp``, ``ssn``
  ...), ends in one (``dbpassword``, ``csrftoken``, ``phpsessid``), or two adjacent words form one
  (``api_key``/``apiKey``, ``private_key``, ``access_key``, ``mysql_pwd``, ``two_factor``,
  ``credit_card``). Whole words, so ``passenger_count``, ``compass_heading`` and ``author`` stay.
- **Values.** Inside every scrubbed string: ``key=value`` / ``key: value`` pairs whose key is
  sensitive (query strings, log lines), ``Bearer`` tokens, the password of ``scheme://user:pw@``
  URLs, credit-card numbers (the reference's vendor-prefix pattern), IBANs, US social security
  numbers and the body of PEM keys.
- **Where.** ``extra``, ``request``, ``user`` (except id/username/email/ip_address, which are kept
  as keys but still scanned), ``contexts``, ``breadcrumbs``, ``tags``, the message, exception
  values and frame variables. Source context lines, file names and module names are code, not user
  data, and are left alone, as the reference does.

Why it is written this way: a 50 KB event holds thousands of strings. Each string is looked at
once: a cheap pre-filter (C-speed substring tests) skips strings that cannot match, and the rest
get a single combined pattern. Key decisions are cached per key. Nothing is copied unless
something changes (copy-on-write along the changed path), and the input is never mutated.
The slow, obvious statement of the same rules lives in ``tests/pipeline/scrub_reference.py``; a
property test holds the two to the same output.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

FILTERED = "[Filtered]"

# -- keys ----------------------------------------------------------------------------------------
SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "passphrase", "secret", "secrets", "token", "tokens",
    "auth", "authorization", "credential", "credentials", "apikey", "privatekey", "session",
    "sessionid", "sessid", "phpsessid", "jsessionid", "csrf", "xsrf", "csrftoken", "xsrftoken",
    "cookie", "cookies", "otp", "ssn", "jwt",
})
# a word ending in one of these is a secret word too: dbpassword, accesstoken, clientsecret
SECRET_SUFFIXES = ("password", "passwd", "token", "secret", "sessid", "sessionid", "apikey", "privatekey")
SECRET_PREFIXES = ("password", "passwd")
SECRET_PAIRS = frozenset({
    ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("session", "key"),
    ("mysql", "pwd"), ("two", "factor"), ("credit", "card"), ("card", "number"),
})
# Substrings every sensitive key contains at least one of (the pre-filter for key=value in text).
KEY_HINTS = ("pass", "secret", "token", "auth", "credential", "key", "sess", "csrf", "xsrf",
             "cookie", "otp", "ssn", "jwt", "pwd", "factor", "card")

_KEY_HINT = re.compile("|".join(KEY_HINTS))  # measured faster than a loop of `in` tests
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


@lru_cache(maxsize=8192)
def is_sensitive_key(key: str) -> bool:
    """Whether a value stored under ``key`` is a secret (decided once per distinct key)."""
    words = [w.lower() for w in _WORD.findall(key)]
    for i, word in enumerate(words):
        if word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES) or word.startswith(SECRET_PREFIXES):
            return True
        if i and (words[i - 1], word) in SECRET_PAIRS:
            return True
    return False


# -- values --------------------------------------------------------------------------------------
# One pattern, alternatives in priority order; each alternative's outer group names the rule.
_RULES = {
    "pem": r"(?P<pem_head>-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?)(?s:.+?)"
           r"(?P<pem_tail>\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----)",
    "url": r"\b(?P<url_head>(?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:)[a-zA-Z0-9%_.-]+@",
    "kv": r"(?<![\w.-])(?P<kv_key>[\w.-]+)(?P<kv_sep>[ \t]*[=:][ \t]*)(?:(?i:bearer)\s+)?[^\s&;,'\"]+",
    "bearer": r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    "card": r"\b(?:3[47][0-9]|4[0-9]{3}|5[1-5][0-9]{2}|65[0-9]{2}|6011)(?:[-\s]?[0-9]){12}\b",
    "iban": r"\b(?:AT|AD|AE|AL|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|GL|"
            r"GR|GT|HR|HU|IE|IL|IQ|IS|IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|LY|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|"
            r"PL|PS|PT|QA|RO|RU|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|TR|UA|VA|VG|XK|DZ|AO|BJ|BF|BI|CV|CM|"
            r"CF|TD|KM|CG|CI|DJ|GQ|GA|GW|HN|IR|MG|ML|MA|MZ|NI|NE|SN|TG)[0-9]{2}[a-zA-Z0-9]{11,29}\b",
    "ssn": r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
}
_NAMES = tuple(_RULES)
_CARD_LIKE = r"[0-9]{3}(?:[-\s]?[0-9]){12}"
_IBAN_LIKE = r"[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{11}"
_SSN_LIKE = r"[0-9]{3}-[0-9]{2}-[0-9]{4}"
# Necessary conditions for the three number rules, in one scan: most strings with digits
# (addresses, amounts, ids) match none of them.
_NUMBER_LIKE = re.compile(f"{_CARD_LIKE}|{_IBAN_LIKE}|{_SSN_LIKE}")
_NUMBER_RULES = (("card", re.compile(_CARD_LIKE)), ("iban", re.compile(_IBAN_LIKE)), ("ssn", re.compile(_SSN_LIKE)))


def _possible_rules(value: str) -> tuple[str, ...]:
    """The rules that could match somewhere in ``value``, by necessary conditions that cost a
    substring test or a simple scan each. Rules that cannot match anywhere do not change the
    leftmost-first outcome, so the combined pattern is built from the rest only."""
    rules: list[str] = []
    if "-----BEGIN" in value:
        rules.append("pem")
    if "//" in value and "@" in value:
        rules.append("url")
    if "=" in value or ":" in value or "earer" in value or "EARER" in value:
        low = value.lower()
        if ("=" in value or ":" in value) and _KEY_HINT.search(low):
            rules.append("kv")
        if "bearer" in low:
            rules.append("bearer")
    if _NUMBER_LIKE.search(value):
        rules.extend(name for name, like in _NUMBER_RULES if like.search(value))
    return tuple(rules)


@lru_cache(maxsize=256)
def _combined(rules: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for these rules, alternatives in priority order; each outer group names its rule."""
    return re.compile("|".join(f"(?P<{name}>{_RULES[name]})" for name in _NAMES if name in rules))


def _replacement(m: re.Match[str]) -> str | None:
    """The text for a match, or None when a key=value match has an innocent key."""
    rule = m.lastgroup  # the outer group: it closes after the groups nested in it
    if rule == "kv":
        key = m.group("kv_key")
        return key + m.group("kv_sep") + FILTERED if is_sensitive_key(key) else None
    if rule == "url":
        return m.group("url_head") + FILTERED + "@"
    if rule == "pem":
        return m.group("pem_head") + FILTERED + m.group("pem_tail")
    return FILTERED  # bearer, card, iban, ssn: the whole match


def scrub_string(value: str) -> str:
    """``value`` with secrets inside it filtered; the same object when nothing matched."""
    if len(value) < 6:
        return value  # shorter than the shortest match ("auth=x")
    rules = _possible_rules(value)
    if not rules:
        return value
    pattern = _combined(rules)
    without_kv = _combined(tuple(r for r in rules if r != "kv")) if "kv" in rules else pattern
    parts: list[str] = []
    done = pos = 0
    while (m := pattern.search(value, pos)) is not None:
        text = _replacement(m)
        if text is None:  # innocent key=value: another rule may still match where the key starts
            start = m.start()
            m = without_kv.match(value, start) if without_kv.pattern else None
            if m is None:
                pos = start + 1
                continue
            text = _replacement(m)
        parts.append(value[done:m.start()])
        parts.append(text or FILTERED)
        done = pos = m.end()
    if not parts:
        return value
    parts.append(value[done:])
    return "".join(parts)


def scrub_value(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """Scrub a JSON value; returns the same object when nothing changed (copy-on-write)."""
    kind = type(value)
    if kind is str:
        return scrub_string(value)
    if kind is dict:
        return _scrub_dict(value, keep)
    if kind is list:
        return _scrub_list(value)
    return value


def _scrub_dict(value: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for key, item in value.items():
        if type(key) is str and key not in keep and is_sensitive_key(key):
            if item is None or item == "" or item == FILTERED:
                continue
            new: Any = FILTERED
        else:
            kind = type(item)  # inlined dispatch: this loop runs for every value of an event
            if kind is str:
                new = scrub_string(item)
            elif kind is dict:
                new = _scrub_dict(item, _NO_KEYS)
            elif kind is list:
                new = _scrub_list(item)
            else:
                continue
            if new is item:
                continue
        if out is None:
            out = dict(value)
        out[key] = new
    return value if out is None else out


def _scrub_list(value: list[Any]) -> list[Any]:
    if len(value) == 2 and type(value[0]) is str and is_sensitive_key(value[0]):
        # header/tag pairs: ["Authorization", "Bearer …"]
        return value if value[1] == FILTERED else [value[0], FILTERED]
    items: list[Any] | None = None
    for i, item in enumerate(value):
        new = scrub_value(item)
        if new is not item:
            if items is None:
                items = list(value)
            items[i] = new
    return value if items is None else items


_NO_KEYS: frozenset[str] = frozenset()


# Fields of an event that hold user-controlled data worth scrubbing.
SCRUBBED_FIELDS = ("extra", "request", "user", "contexts", "breadcrumbs", "tags", "message", "logentry")
_KEEP_USER_KEYS = frozenset({"id", "username", "email", "ip_address"})


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy of a normalized event with secrets filtered. Never mutates the input;
    unchanged parts are shared with it, not copied."""
    out = dict(event)
    for field in SCRUBBED_FIELDS:
        if field in out:
            out[field] = scrub_value(out[field], keep=_KEEP_USER_KEYS if field == "user" else frozenset())
    exceptions = out.get("exception")
    if isinstance(exceptions, list):
        new = [_scrub_exception(exc) for exc in exceptions]
        if any(a is not b for a, b in zip(new, exceptions)):
            out["exception"] = new
    return out


def _scrub_exception(exc: Any) -> Any:
    if not isinstance(exc, dict):
        return exc
    out: dict[str, Any] | None = None
    value = exc.get("value")
    if isinstance(value, str):
        new_value = scrub_string(value)
        if new_value is not value:
            out = dict(exc)
            out["value"] = new_value
    frames = exc.get("frames")
    if isinstance(frames, list):
        new_frames: list[Any] | None = None
        for i, frame in enumerate(frames):
            if isinstance(frame, dict) and "vars" in frame:
                new_vars = scrub_value(frame["vars"])
                if new_vars is not frame["vars"]:
                    if new_frames is None:
                        new_frames = list(frames)
                    new_frames[i] = {**frame, "vars": new_vars}
        if new_frames is not None:
            if out is None:
                out = dict(exc)
            out["frames"] = new_frames
    return exc if out is None else out
