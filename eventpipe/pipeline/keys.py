"""Deterministic keys: the same event always lands at the same place, so every write is idempotent."""

from __future__ import annotations


def body_key(project_id: int, event_id: str) -> str:
    return f"{project_id}/{event_id}"
