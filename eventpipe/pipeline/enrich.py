"""What the enrichment tasks keep of an event: a hash of its user and its tag pairs. Pure logic.

The user is reduced to a SHA-1 of the first identifying field present (id, email, username, IP
address), prefixed by the field's name so an id "7" and a username "7" stay distinct users. The
value itself never reaches the database: affected-user counts need identity, not the address."""

from __future__ import annotations

import hashlib
from typing import Any

USER_FIELDS = ("id", "email", "username", "ip_address")
MAX_TAGS = 50
MAX_KEY = 32
MAX_VALUE = 200


def user_hash(event: dict[str, Any]) -> str | None:
    """The affected user's hash, or None when the event names no user."""
    user = event.get("user")
    if not isinstance(user, dict):
        return None
    for name in USER_FIELDS:
        value = user.get(name)
        if value not in (None, ""):
            return hashlib.sha1(f"{name}:{value}".encode(), usedforsecurity=False).hexdigest()
    return None


def tag_pairs(event: dict[str, Any]) -> list[list[str]]:
    """The event's tags as [key, value] pairs, cut to the index's column sizes, first value per key."""
    tags = event.get("tags") or []
    pairs = tags.items() if isinstance(tags, dict) else tags
    out: dict[str, str] = {}
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            continue
        key, value = pair
        if isinstance(key, str) and isinstance(value, str) and key and key[:MAX_KEY] not in out:
            out[key[:MAX_KEY]] = value[:MAX_VALUE]
        if len(out) >= MAX_TAGS:
            break
    return [[k, v] for k, v in out.items()]
