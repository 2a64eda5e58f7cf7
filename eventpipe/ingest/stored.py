"""What is stored for one event in the KV store: its body at ``{project}/{event_id}`` and its
attachments beside it at ``{project}/{event_id}.att/{index}-{filename}``, each with a small JSON
description at ``{project}/{event_id}.att/{index}.meta`` (a sibling prefix, not a sub-folder of the
body key: a filesystem store cannot have a file and a folder of one name). Used by the ingest
endpoint, `send` and `events show`."""

from __future__ import annotations

import re
from typing import Any

import orjson

from eventpipe.kvstore.base import KeyValueStore
from eventpipe.pipeline.envelope import Attachment
from eventpipe.pipeline.keys import body_key

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def attachment_key(project_id: int, event_id: str, index: int, filename: str) -> str:
    safe = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", filename))[-120:].strip(".") or "attachment"
    return f"{_prefix(project_id, event_id)}{index}-{safe}"


def _prefix(project_id: int, event_id: str) -> str:
    return f"{body_key(project_id, event_id)}.att/"


def store_attachments(store: KeyValueStore, project_id: int, event_id: str, attachments: list[Attachment]) -> list[str]:
    """Put every attachment (idempotent: deterministic keys); returns their keys."""
    items: dict[str, bytes] = {}
    for att in attachments:
        key = attachment_key(project_id, event_id, att.index, att.filename)
        items[key] = att.payload
        meta = {
            "key": key, "filename": att.filename, "content_type": att.content_type,
            "attachment_type": att.attachment_type, "size": len(att.payload),
        }
        items[f"{_prefix(project_id, event_id)}{att.index}.meta"] = orjson.dumps(meta)
    for key, value in items.items():  # one by one: a 100 MB batch would be held twice by some stores
        store.put(key, value)
    return [k for k in items if not k.endswith(".meta")]


def list_attachments(store: KeyValueStore, project_id: int, event_id: str) -> list[dict[str, Any]]:
    prefix = _prefix(project_id, event_id)
    metas = []
    meta_keys = [k for k in store.keys(prefix) if k.endswith(".meta") and k[len(prefix) : -5].isdigit()]
    for key in sorted(meta_keys, key=lambda k: int(k[len(prefix) : -5])):
        raw = store.get(key)
        if raw is not None:
            metas.append(orjson.loads(raw))
    return metas


def show_event(store: KeyValueStore, project_id: int, event_id: str) -> dict[str, Any] | None:
    """The stored body and attachment list of an event, or None when there is no body."""
    raw = store.get(body_key(project_id, event_id))
    if raw is None:
        return None
    return {
        "project_id": project_id,
        "event_id": event_id,
        "key": body_key(project_id, event_id),
        "event": orjson.loads(raw),
        "attachments": list_attachments(store, project_id, event_id),
    }
