"""``eventpipe ops killswitch``: drop messages of a task (pattern) with given kwargs, until removed."""

from __future__ import annotations

import json

import click

from eventpipe.ops.killswitch import add_rule, list_rules, parse_where, remove_rule

from ._common import CommandFailed, emit_json, group, json_option, open_rt, out, table


@group()
def killswitch() -> None:
    """Drop messages of a task (pattern) with given kwargs, in every worker, until removed."""


@killswitch.command("add")
@click.argument("task")
@click.option("--where", "where", multiple=True, help="key=value the message kwargs must equal (repeatable)")
@click.option("--reason", default="")
@json_option
def add(task: str, where: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Add a rule: TASK is a name or pattern (events.*)."""
    try:
        cond = parse_where(where)
    except ValueError as exc:  # a --where without '='
        raise click.UsageError(str(exc)) from None
    rid = add_rule(open_rt().db, task, cond, reason)
    if as_json:
        emit_json({"id": rid, "task": task, "where": cond, "reason": reason})
    else:
        out.print(f"kill switch {rid}: drop {task} where {cond or 'any kwargs'} (workers apply it within ~2 s)")


@killswitch.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every rule with how many messages it dropped."""
    rules = list_rules(open_rt().db)
    if as_json:
        emit_json(rules)
        return
    out.print(table(["id", "task", "where", "dropped", "created", "reason"],
                    [[r["id"], r["task"], json.dumps(r["where"]), r["dropped"], r["created_at"], r["reason"]]
                     for r in rules], title="kill switches"))


@killswitch.command("remove")
@click.argument("rule_id", type=int)
@json_option
def remove(rule_id: int, as_json: bool) -> None:
    """Remove rule RULE_ID (workers stop applying it within ~2 s)."""
    if not remove_rule(open_rt().db, rule_id):
        raise CommandFailed(f"no kill switch {rule_id}; see `eventpipe ops killswitch list`")
    if as_json:
        emit_json({"id": rule_id, "removed": True})
    else:
        out.print(f"kill switch {rule_id} removed (workers stop applying it within ~2 s)")


__all__ = ["killswitch"]
