"""Fingerprint rules: parsing the reference syntax, matching normalized events, the resulting hash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventpipe.pipeline.fingerprint_rules import (
    RuleSet,
    RulesSyntaxError,
    fingerprint_for,
    glob_match,
    grouping_hash,
    match,
    parse_rules,
)
from eventpipe.pipeline.grouping import DEFAULT_MARKER, fingerprint_hash
from eventpipe.pipeline.normalize import normalize_event


def event(**data):
    data.setdefault("event_id", "a" * 32)
    return normalize_event(data, project_id=1, received=1_700_000_000.0)


def crash(etype="ConnectionError", value="refused", frames=(("app.db", "connect", "app/db.py"),), **extra):
    return event(
        exception={"values": [{"type": etype, "value": value, "stacktrace": {"frames": [
            {"module": m, "function": f, "abs_path": p, "in_app": True} for m, f, p in frames
        ]}}]},
        **extra,
    )


RULES = """
# network trouble is one issue, whatever the stack
error.type:ConnectionError -> connection-errors
type:DatabaseError value:"*connection refused*" -> db-down, {{ default }}
stack.function:checkout* !level:warning -> checkout, {{ error.type }} title="Checkout failed"
tags.server_name:db-* message:"*timeout*" -> db-timeouts
path:**/vendor/** -> vendored
"""


def test_parse_reads_the_reference_syntax():
    rules = parse_rules(RULES)
    assert len(rules) == 5
    first, second, third = rules.rules[:3]
    assert [(m.key, m.pattern, m.negated) for m in first.matchers] == [("type", "ConnectionError", False)]
    assert first.fingerprint == ("connection-errors",)
    assert second.fingerprint == ("db-down", DEFAULT_MARKER)
    assert [(m.key, m.negated) for m in third.matchers] == [("function", False), ("level", True)]
    assert third.fingerprint == ("checkout", "{{ error.type }}")
    assert third.title == "Checkout failed"
    # JSON round trip (how versions are stored)
    assert RuleSet.from_json(rules.to_json()) == rules
    # the text form parses back to the same rules
    assert parse_rules("\n".join(r.text() for r in rules.rules)) == rules


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("colour:red -> x", "unknown matcher 'colour'"),
        ("type:ValueError", "expected a matcher"),
        ("-> x", "at least one matcher"),
        ("type:ValueError -> ", "needs a fingerprint"),
        ('type:ValueError -> x colour="red"', "unknown attribute"),
    ],
)
def test_parse_errors_name_the_line_and_the_fix(text, reason):
    with pytest.raises(RulesSyntaxError) as info:
        parse_rules("# ok\n" + text)
    assert info.value.line == 2
    assert reason in str(info.value)


def test_first_matching_rule_wins_and_variables_are_filled():
    rules = parse_rules(RULES)
    assert fingerprint_for(crash(), rules) == ["connection-errors"]
    db = crash("DatabaseError", "FATAL: Connection refused by host")
    assert fingerprint_for(db, rules) == ["db-down", DEFAULT_MARKER]
    checkout = crash("KeyError", "'sku'", frames=(("shop.cart", "checkout_step", "shop/cart.py"),))
    found = match(checkout, rules)
    assert found is not None and found.fingerprint == ["checkout", "KeyError"] and found.title == "Checkout failed"
    # negation: the same crash at level warning does not match that rule
    assert fingerprint_for(crash("KeyError", frames=(("shop.cart", "checkout_step", "x.py"),), level="warning"), rules) is None
    # tags + message (message also looks at exception values)
    msg = event(message="query timeout after 30s", tags={"server_name": "db-3"})
    assert fingerprint_for(msg, rules) == ["db-timeouts"]
    assert fingerprint_for(event(message="query timeout", tags={"server_name": "web-1"}), rules) is None
    # paths: ** crosses directories, matching is case-insensitive
    vendored = crash("ValueError", frames=(("x", "f", "/srv/App/Vendor/lib/thing.py"),))
    assert fingerprint_for(vendored, rules) == ["vendored"]
    assert fingerprint_for(event(message="hello"), rules) is None


def test_matchers_of_one_kind_must_hold_for_the_same_frame():
    rules = parse_rules("module:app.a function:one -> same-frame")
    both_in_one = crash(frames=(("app.a", "one", "a.py"), ("app.b", "two", "b.py")))
    split = crash(frames=(("app.a", "two", "a.py"), ("app.b", "one", "b.py")))
    assert fingerprint_for(both_in_one, rules) == ["same-frame"]
    assert fingerprint_for(split, rules) is None


def test_case_rules_follow_the_reference():
    # types and functions are case-sensitive; values, messages and levels are not
    assert fingerprint_for(crash("connectionerror"), parse_rules("type:ConnectionError -> x")) is None
    assert fingerprint_for(crash(value="REFUSED"), parse_rules("value:refused -> x")) == ["x"]
    assert fingerprint_for(crash(level="ERROR"), parse_rules("level:error -> x")) == ["x"]


def test_grouping_hash_rules_override_the_client_fingerprint_and_default_keeps_default():
    rules = parse_rules("type:ConnectionError -> net\ntype:KeyError -> keys, {{ default }}")
    a = crash(frames=(("app.a", "f", "a.py"),), fingerprint=["client-chose"])
    b = crash(frames=(("app.b", "g", "b.py"),))
    assert grouping_hash(a, rules) == grouping_hash(b, rules)  # both -> "net"
    assert grouping_hash(a, RuleSet()) == fingerprint_hash(a)  # no rules: unchanged behaviour
    k1 = crash("KeyError", frames=(("app.a", "f", "a.py"),))
    k2 = crash("KeyError", frames=(("app.b", "g", "b.py"),))
    assert grouping_hash(k1, rules) != grouping_hash(k2, rules)  # {{ default }} keeps them apart
    assert grouping_hash(k1, rules) != fingerprint_hash(k1)  # but not the plain default group
    assert "fingerprint" not in k1  # the event itself is not changed


@pytest.mark.parametrize(
    ("value", "pattern", "path", "expected"),
    [
        ("ConnectionError", "Conn*", False, True),
        ("a/b/c.py", "a/*.py", True, False),
        ("a/b/c.py", "a/**.py", True, True),
        ("a/b/c.py", "**/c.py", True, True),
        ("x1", "x[0-9]", False, True),
        ("xa", "x[!0-9]", False, True),
        ("a.b", "a?b", False, True),
        ("C:\\src\\a.py", "C:/src/*.py", True, True),
    ],
)
def test_glob(value, pattern, path, expected):
    assert glob_match(value, pattern, path=path, ignorecase=False) is expected


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_literal_patterns_match_only_themselves(text):
    literal = "".join(c for c in text if c not in "*?[")
    assert glob_match(literal, literal)
    assert not glob_match(literal + "x", literal)
