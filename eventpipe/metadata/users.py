"""Console users and the audit trail: what ``eventpipe users`` and ``eventpipe web`` share.

Passwords are generated (never chosen), shown once, and stored as a salted scrypt hash: scrypt is
deliberately slow and memory-hard, so a stolen ``web_users`` table does not give the passwords
away. Verification recomputes the hash with the parameters stored beside it and compares in
constant time, so the cost can be raised later without invalidating existing users.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import delete, select

from eventpipe.errors import EventpipeError

from .db import Database, utcnow
from .models import AuditEntry, WebUser

ROLES = ("admin", "viewer")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~50 ms and 32 MiB per hash on one core
_MAXMEM = 64 * 1024 * 1024


class UserError(EventpipeError, ValueError):
    """A user cannot be created or changed; the message says why and what to do."""

    exit_code: ClassVar[int] = 2
    hint: ClassVar[str] = "`eventpipe users list` shows the users; `eventpipe users add NAME --role admin|viewer`"


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 144 random bits


def add_user(db: Database, name: str, role: str = "viewer", *, replace: bool = False) -> str:
    """Create ``name`` with a generated password and return that password (shown once)."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        raise UserError(f"a user name is 1-100 characters without spaces, got {name!r}")
    password = generate_password()
    with db.session() as s:
        user = s.get(WebUser, name)
        if user is not None and not replace:
            raise UserError(f"user {name!r} exists; pass --reset to give it a new password")
        if user is None:
            user = WebUser(name=name, created_at=utcnow())
            s.add(user)
        user.role = role
        user.password_hash = hash_password(password)
    return password


def remove_user(db: Database, name: str) -> bool:
    with db.session() as s:
        return bool(s.execute(delete(WebUser).where(WebUser.name == name)).rowcount)


def list_users(db: Database) -> list[dict[str, Any]]:
    with db.session() as s:
        return [{"name": u.name, "role": u.role, "created_at": u.created_at.isoformat() + "Z"}
                for u in s.scalars(select(WebUser).order_by(WebUser.name))]


def get_user(db: Database, name: str) -> dict[str, str] | None:
    with db.session() as s:
        user = s.get(WebUser, name)
        return None if user is None else {"name": user.name, "role": user.role}


def authenticate(db: Database, name: str, password: str) -> dict[str, str] | None:
    """The user when the password matches, else None. Unknown names cost a hash too, so timing
    does not tell which names exist."""
    with db.session() as s:
        user = s.get(WebUser, name)
        stored = user.password_hash if user is not None else _dummy_hash()
        role = user.role if user is not None else ""
    ok = check_password(password, stored)
    return {"name": name, "role": role} if ok and user is not None else None


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(8))


def audit(db: Database, user: str, action: str, target: str, *, outcome: str = "ok",
          detail: dict[str, Any] | None = None, at: datetime | None = None) -> None:
    with db.session() as s:
        s.add(AuditEntry(at=at or utcnow(), user=user, action=action, target=target[:300], outcome=outcome,
                         detail=detail or {}))


def audit_rows(db: Database, *, target: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with db.session() as s:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if target is not None:
            q = q.where(AuditEntry.target == target)
        return [{"id": a.id, "at": a.at.isoformat() + "Z", "user": a.user, "action": a.action, "target": a.target,
                 "outcome": a.outcome, "detail": a.detail} for a in s.scalars(q)]
