"""The issue actions the console offers, as calls into the metadata package: status changes
always; merge and unmerge when the grouping operations are installed (``CAN_MERGE``)."""

from __future__ import annotations

from typing import Any

from eventpipe.metadata import issue_reads
from eventpipe.metadata.issue_status import set_status as _set_status

CAN_MERGE = False


def set_status(rt: Any, issue_id: int, status: str, user: str) -> bool:
    return _set_status(rt.db, issue_id, status)


def hashes(rt: Any, issue_id: int, issue: dict[str, Any]) -> list[str]:
    return issue_reads.issue_hashes(rt.db, issue_id)


def merge(rt: Any, issue_id: int, into: int, user: str) -> dict[str, Any]:
    raise NotImplementedError("merging issues is not available in this build")


def unmerge(rt: Any, issue_id: int, hashes: list[str], user: str) -> dict[str, Any]:
    raise NotImplementedError("unmerging issues is not available in this build")
