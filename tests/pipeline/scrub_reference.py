"""The scrubbing rules stated once, slowly and obviously: the oracle for eventpipe.pipeline.scrub.

Each rule is its own pattern; text is read left to right and, at each position, the rules are
tried in order and the first that applies there wins. Keys are split into words by walking the
characters. No pre-filter, no caching, no combined pattern, always a fresh copy: if the fast
implementation ever disagrees with this, the fast one is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FILTERED = "[Filtered]"

SECRET_WORDS = [
    "password", "passwords", "passwd", "passphrase", "secret", "secrets", "token", "tokens",
    "auth", "authorization", "credential", "credentials", "apikey", "privatekey", "session",
    "sessionid", "sessid", "phpsessid", "jsessionid", "csrf", "xsrf", "csrftoken", "xsrftoken",
    "cookie", "cookies", "otp", "ssn", "jwt",
]
SECRET_ENDINGS = ["password", "passwd", "token", "secret", "sessid", "sessionid", "apikey", "privatekey"]
SECRET_BEGINNINGS = ["password", "passwd"]
SECRET_PAIRS = [
    ("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("session", "key"),
    ("mysql", "pwd"), ("two", "factor"), ("credit", "card"), ("card", "number"),
]
SCRUBBED_FIELDS = ["extra", "request", "user", "contexts", "breadcrumbs", "tags", "message", "logentry"]
USER_KEYS_KEPT = ["id", "username", "email", "ip_address"]


def _kind(c: str) -> str:
    if "a" <= c <= "z":
        return "lower"
    if "A" <= c <= "Z":
        return "upper"
    if "0" <= c <= "9":
        return "digit"
    return "other"


def key_words(key: str) -> list[str]:
    """Words of a key: separators end a word; so do a lower->upper or letter<->digit change; in a
    run of capitals followed by a small letter, the last capital starts the next word (APIKey)."""
    words: list[str] = []
    current = ""
    for i, c in enumerate(key):
        kind = _kind(c)
        if kind == "other":
            if current:
                words.append(current)
            current = ""
            continue
        if current:
            prev = _kind(current[-1])
            following = _kind(key[i + 1]) if i + 1 < len(key) else "other"
            new_word = (prev != kind and not (prev == "upper" and kind == "lower")) or (
                prev == "upper" and kind == "upper" and following == "lower"
            )
            if new_word:
                words.append(current)
                current = ""
        current += c
    if current:
        words.append(current)
    return [w.lower() for w in words]


def sensitive_key(key: str) -> bool:
    words = key_words(key)
    for i, word in enumerate(words):
        if word in SECRET_WORDS:
            return True
        for ending in SECRET_ENDINGS:
            if word.endswith(ending):
                return True
        for beginning in SECRET_BEGINNINGS:
            if word.startswith(beginning):
                return True
        if i > 0 and (words[i - 1], word) in SECRET_PAIRS:
            return True
    return False


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str]], str | None]  # None: the rule does not apply here after all


def _kv(m: re.Match[str]) -> str | None:
    return m.group(1) + m.group(2) + FILTERED if sensitive_key(m.group(1)) else None


RULES = [
    Rule("pem key body",
         re.compile(r"(-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?).+?(\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----)", re.DOTALL),
         lambda m: m.group(1) + FILTERED + m.group(2)),
    Rule("password in a URL", re.compile(r"\b((?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:)[a-zA-Z0-9%_.-]+@"),
         lambda m: m.group(1) + FILTERED + "@"),
    Rule("key=value with a sensitive key",
         re.compile(r"(?<![\w.-])([\w.-]+)([ \t]*[=:][ \t]*)(?:[Bb][Ee][Aa][Rr][Ee][Rr]\s+)?[^\s&;,'\"]+"), _kv),
    Rule("bearer token", re.compile(r"\b[Bb][Ee][Aa][Rr][Ee][Rr]\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: FILTERED),
    Rule("credit card", re.compile(r"\b(?:3[47][0-9]|4[0-9]{3}|5[1-5][0-9]{2}|65[0-9]{2}|6011)(?:[-\s]?[0-9]){12}\b"),
         lambda m: FILTERED),
    Rule("IBAN", re.compile(
        r"\b(?:AT|AD|AE|AL|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|GL|GR|GT|HR|HU|IE|IL|IQ|IS|"
        r"IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|LY|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|PL|PS|PT|QA|RO|RU|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|"
        r"TR|UA|VA|VG|XK|DZ|AO|BJ|BF|BI|CV|CM|CF|TD|KM|CG|CI|DJ|GQ|GA|GW|HN|IR|MG|ML|MA|MZ|NI|NE|SN|TG)[0-9]{2}[a-zA-Z0-9]{11,29}\b"),
         lambda m: FILTERED),
    Rule("US social security number", re.compile(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"), lambda m: FILTERED),
]


def scrub_text(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        for rule in RULES:
            m = rule.pattern.match(text, i)
            if m is None:
                continue
            replacement = rule.replace(m)
            if replacement is None:
                continue
            out.append(replacement)
            i = m.end()
            break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def scrub_json(value: Any, keep: list[str] | None = None) -> Any:
    keep = keep or []
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and key not in keep and sensitive_key(key):
                out[key] = item if item is None or item == "" else FILTERED
            else:
                out[key] = scrub_json(item)
        return out
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and sensitive_key(value[0]):
            return [value[0], FILTERED]
        return [scrub_json(item) for item in value]
    return value


def scrub_event_reference(event: dict[str, Any]) -> dict[str, Any]:
    out = dict(event)
    for field in SCRUBBED_FIELDS:
        if field in out:
            out[field] = scrub_json(out[field], USER_KEYS_KEPT if field == "user" else None)
    if isinstance(out.get("exception"), list):
        exceptions = []
        for exc in out["exception"]:
            if isinstance(exc, dict):
                exc = dict(exc)
                if isinstance(exc.get("value"), str):
                    exc["value"] = scrub_text(exc["value"])
                if isinstance(exc.get("frames"), list):
                    exc["frames"] = [
                        {**f, "vars": scrub_json(f["vars"])} if isinstance(f, dict) and "vars" in f else f
                        for f in exc["frames"]
                    ]
            exceptions.append(exc)
        out["exception"] = exceptions
    return out
