"""Per-project fingerprint rules, stored as numbered versions (the highest is in force).

The processing stage reads the rules of a batch's projects once per batch
(:func:`rules_for_projects`: one query for the current versions; each version is parsed once per
process and cached), so a new version applies to the next batch, with no restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from eventpipe.metadata.db import Database, utcnow
from eventpipe.metadata.issues import InvalidIssueAction
from eventpipe.metadata.models import FingerprintRuleVersion, Project
from eventpipe.pipeline.fingerprint_rules import RuleSet, parse_rules, rules_digest

_cache: dict[tuple[int, int], RuleSet] = {}
_cache_lock = threading.Lock()


def set_rules(db: Database, project_id: int, text: str, *, actor: str) -> dict[str, Any]:
    """Parse and store a new version (raises RulesSyntaxError before storing anything)."""
    rules = parse_rules(text)
    with db.session() as s:
        if s.get(Project, project_id) is None:
            raise InvalidIssueAction(f"no project {project_id}; create it with `eventpipe projects add {project_id} NAME`")
        latest = s.scalar(select(func.max(FingerprintRuleVersion.version)).where(FingerprintRuleVersion.project_id == project_id))
        version = (latest or 0) + 1
        s.add(
            FingerprintRuleVersion(
                project_id=project_id, version=version, text=text, rules=rules.to_json(), actor=actor, created_at=utcnow()
            )
        )
    return {"project_id": project_id, "version": version, "rules": len(rules), "digest": rules_digest(text)}


def current_version(s: Session, project_id: int) -> int:
    return s.scalar(select(func.max(FingerprintRuleVersion.version)).where(FingerprintRuleVersion.project_id == project_id)) or 0


def rules_at(s: Session, project_id: int, version: int) -> RuleSet:
    """The rules of one version (version 0: none)."""
    if version == 0:
        return RuleSet()
    key = (project_id, version)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    row = s.get(FingerprintRuleVersion, (project_id, version))
    rules = RuleSet() if row is None else RuleSet.from_json(row.rules)
    with _cache_lock:
        _cache[key] = rules
    return rules


def rules_for_projects(db: Database, project_ids: Iterable[int]) -> dict[int, RuleSet]:
    """Current rules of each project (empty RuleSet when it has none): one query per call."""
    ids = sorted(set(project_ids))
    if not ids:
        return {}
    with db.session() as s:
        versions = dict(
            s.execute(
                select(FingerprintRuleVersion.project_id, func.max(FingerprintRuleVersion.version))
                .where(FingerprintRuleVersion.project_id.in_(ids))
                .group_by(FingerprintRuleVersion.project_id)
            ).all()
        )
        return {pid: rules_at(s, pid, versions.get(pid, 0)) for pid in ids}


def rule_versions(db: Database, project_id: int) -> list[dict[str, Any]]:
    with db.session() as s:
        return [
            {
                "version": r.version,
                "rules": len(r.rules),
                "digest": rules_digest(r.text),
                "actor": r.actor,
                "created_at": r.created_at.isoformat() + "Z",
                "text": r.text,
            }
            for r in s.scalars(
                select(FingerprintRuleVersion).where(FingerprintRuleVersion.project_id == project_id).order_by(FingerprintRuleVersion.version)
            )
        ]
