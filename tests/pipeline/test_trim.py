"""Trimming: the reference system's limits, a note in ``errors`` per cut, bounded output for any input."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.pipeline.demo import generate
from eventpipe.pipeline.normalize import normalize_event
from eventpipe.pipeline.trim import (
    BAGS, BREADCRUMB_DATA, DEPTH_MARKER, FRAME_VARS, FRAMES_WITH_DATA, MAX_BREADCRUMBS, MAX_FRAMES,
    MAX_TRIM_ERRORS, Bag, trim_event,
)


def _frame(i: int, **extra: Any) -> dict[str, Any]:
    return {"function": f"f{i}", "lineno": i, "context_line": f"line {i}", "pre_context": ["a"], "post_context": ["b"],
            "vars": {"i": i}, **extra}


def test_a_normal_large_event_is_returned_as_is():
    event = normalize_event(generate(1, seed=2, now=1_760_000_000.0, large=True)[0].payload, project_id=1, received=1_760_000_000.0)
    assert trim_event(event) is event


def test_long_variable_strings_are_cut_to_512_with_a_note():
    event = {"event_id": "0" * 32, "exception": [{"type": "E", "value": "v", "frames": [_frame(0, vars={"blob": "x" * 5000, "n": 1})]}]}
    before = copy.deepcopy(event)
    out = trim_event(event)
    blob = out["exception"][0]["frames"][0]["vars"]["blob"]
    assert len(blob) == 512 and blob.endswith("…")
    assert out["errors"] == [{"type": "value_too_long", "name": "exception.0.frames.0.vars.blob"}]
    assert event == before, "trimming must not mutate its input"


def test_breadcrumbs_keep_the_latest_100():
    crumbs = [{"message": f"m{i}"} for i in range(250)]
    out = trim_event({"event_id": "0" * 32, "message": "x", "breadcrumbs": crumbs})
    assert len(out["breadcrumbs"]) == MAX_BREADCRUMBS and out["breadcrumbs"][-1] == {"message": "m249"}
    assert out["breadcrumbs"][0] == {"message": "m150"}
    assert {"type": "too_many_items", "name": "breadcrumbs"} in out["errors"]


def test_frames_keep_head_and_tail_and_only_the_ends_keep_their_data():
    frames = [_frame(i) for i in range(400)]
    out = trim_event({"event_id": "0" * 32, "exception": [{"type": "E", "value": "v", "frames": frames}]})
    kept = out["exception"][0]["frames"]
    assert len(kept) == MAX_FRAMES
    assert kept[0]["function"] == "f0" and kept[-1]["function"] == "f399"
    assert kept[MAX_FRAMES // 2 - 1]["function"] == f"f{MAX_FRAMES // 2 - 1}" and kept[MAX_FRAMES // 2]["function"] == f"f{400 - MAX_FRAMES // 2}"
    with_data = [f for f in kept if "vars" in f or "context_line" in f]
    assert len(with_data) == FRAMES_WITH_DATA
    assert "vars" in kept[0] and "vars" in kept[-1] and "vars" not in kept[100]
    assert kept[100]["function"] == "f100" and kept[100]["lineno"] == 100  # the frame itself stays
    names = [e["name"] for e in out["errors"]]
    assert "exception.0.frames" in names and "exception.0.frames.data" in names


def test_deep_and_wide_bags():
    deep: Any = "bottom"
    for _ in range(12):
        deep = {"d": deep}
    out = trim_event({"event_id": "0" * 32, "message": "x", "extra": {"deep": deep, "wide": list(range(500))}})
    node = out["extra"]["deep"]
    for _ in range(BAGS["extra"].depth - 2):
        node = node["d"]
    assert node["d"] == DEPTH_MARKER
    assert len(out["extra"]["wide"]) == BAGS["extra"].items
    kinds = {e["type"] for e in out["errors"]}
    assert kinds == {"too_deep", "too_many_items"}


def test_error_notes_are_bounded_and_existing_errors_kept():
    frames = [_frame(i, vars={"s": "y" * 600}) for i in range(60)]
    out = trim_event({"event_id": "0" * 32, "errors": [{"field": "level", "error": "unknown"}],
                      "exception": [{"type": "E", "value": "v", "frames": frames}]})
    assert out["errors"][0] == {"field": "level", "error": "unknown"}
    assert len(out["errors"]) == 1 + MAX_TRIM_ERRORS + 1
    assert out["errors"][-1] == {"type": "too_many_items", "name": "errors"}


# -- any input: bounded output -----------------------------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=700)),
    lambda children: st.one_of(st.lists(children, max_size=70), st.dictionaries(st.text(max_size=20), children, max_size=70)),
    max_leaves=120,
)


def _measure(value: Any, depth: int = 0) -> tuple[int, int, int, int]:
    """(depth, most items in one container, longest string, characters of keys and strings)."""
    if isinstance(value, str):
        return depth, 0, len(value), len(value)
    if isinstance(value, dict):
        parts = [_measure(v, depth + 1) for v in value.values()]
        chars = sum(len(k) for k in value) + sum(p[3] for p in parts)
    elif isinstance(value, list):
        parts = [_measure(v, depth + 1) for v in value]
        chars = sum(p[3] for p in parts)
    else:
        return depth, 0, 0, 0
    return (max([depth] + [p[0] for p in parts]), max([len(value)] + [p[1] for p in parts]),
            max([0] + [p[2] for p in parts]), chars)


def _assert_within(value: Any, bag: Bag) -> None:
    depth, items, longest, chars = _measure(value)
    assert depth <= bag.depth and items <= bag.items and longest <= bag.string and chars <= bag.budget


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    extra=json_values,
    variables=st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=8), max_size=20),
    plain_frames=st.integers(0, 400),
    crumbs=st.lists(st.fixed_dictionaries({"message": st.text(max_size=20)}, optional={"data": json_values}), max_size=20),
    plain_crumbs=st.integers(0, 200),
)
def test_trimmed_output_is_bounded(
    extra: Any, variables: list[dict[str, Any]], plain_frames: int, crumbs: list[dict[str, Any]], plain_crumbs: int
) -> None:
    frames = [{"function": "f", "vars": v} for v in variables] + [_frame(i) for i in range(plain_frames)]
    event = {"event_id": "0" * 32, "extra": {"x": extra}, "breadcrumbs": [{"message": "m"}] * plain_crumbs + crumbs,
             "exception": [{"type": "E", "value": "v", "frames": frames[::-1] if plain_frames % 2 else frames}]}
    out = trim_event(event)
    _assert_within(out["extra"], BAGS["extra"])
    assert len(out["breadcrumbs"]) <= MAX_BREADCRUMBS
    for crumb in out["breadcrumbs"]:
        if "data" in crumb:
            _assert_within(crumb["data"], BREADCRUMB_DATA)
    frames = out["exception"][0]["frames"]
    assert len(frames) <= MAX_FRAMES
    assert sum(1 for f in frames if "vars" in f) <= FRAMES_WITH_DATA
    for frame in frames:
        if "vars" in frame:
            _assert_within(frame["vars"], FRAME_VARS)
    assert len(out.get("errors", [])) <= MAX_TRIM_ERRORS + 1
    assert trim_event(out)["exception"] == out["exception"], "trimming twice changes nothing more"
