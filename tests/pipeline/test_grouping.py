from eventpipe.pipeline.grouping import fingerprint_hash, message_template, title_and_culprit
from eventpipe.pipeline.normalize import normalize_event


def ev(**data):
    return normalize_event(data, project_id=1, received=1_760_000_000.0)


def exc_event(etype="KeyError", value="'x'", frames=(("app.views", "show", 10),), lib_line=5):
    return ev(
        exception={"values": [{"type": etype, "value": value, "stacktrace": {"frames": [
            {"module": "django.core", "function": "dispatch", "lineno": lib_line},
            *({"module": m, "function": f, "lineno": line} for m, f, line in frames),
        ]}}]}
    )


def test_same_type_and_in_app_frames_group_together_despite_line_numbers_and_values():
    a = exc_event(value="'a'", frames=(("app.views", "show", 10),), lib_line=1)
    b = exc_event(value="'b'", frames=(("app.views", "show", 99),), lib_line=500)
    assert fingerprint_hash(a) == fingerprint_hash(b)


def test_different_function_or_type_splits():
    base = exc_event()
    assert fingerprint_hash(base) != fingerprint_hash(exc_event(frames=(("app.views", "edit", 10),)))
    assert fingerprint_hash(base) != fingerprint_hash(exc_event(etype="ValueError"))


def test_library_frames_do_not_affect_grouping_when_in_app_frames_exist():
    a = exc_event()
    b = ev(exception={"values": [{"type": "KeyError", "value": "'x'", "stacktrace": {"frames": [
        {"module": "flask.app", "function": "wsgi_app"},
        {"module": "app.views", "function": "show"},
    ]}}]})
    assert fingerprint_hash(a) == fingerprint_hash(b)


def test_custom_fingerprint_wins_and_default_marker_expands():
    a = exc_event()
    custom = ev(message="anything", fingerprint=["billing", "timeout"])
    custom2 = ev(message="something else", fingerprint=["billing", "timeout"])
    assert fingerprint_hash(custom) == fingerprint_hash(custom2)
    withdefault = dict(a, fingerprint=["{{ default }}", "tenant-1"])
    withdefault2 = dict(a, fingerprint=["{{ default }}", "tenant-2"])
    assert fingerprint_hash(withdefault) != fingerprint_hash(withdefault2)
    assert fingerprint_hash(withdefault) != fingerprint_hash(a)


def test_message_events_group_by_template():
    a = ev(logentry={"message": "user %s failed", "params": ["bob"]})
    b = ev(logentry={"message": "user %s failed", "params": ["alice"]})
    assert fingerprint_hash(a) == fingerprint_hash(b)
    c = ev(message="Slow query took 1234 ms on 10.0.0.1")
    d = ev(message="Slow query took 99 ms on 10.0.0.7")
    assert fingerprint_hash(c) == fingerprint_hash(d)
    assert message_template("order 5f1e2d3c4b5a69788796a5b4c3d2e1f0 failed") == "order <hex> failed"


def test_title_and_culprit():
    title, culprit = title_and_culprit(exc_event(value="'user_id'"))
    assert title == "KeyError: 'user_id'"
    assert culprit == "app.views in show"
    assert title_and_culprit(ev(message="hello\nworld"))[0] == "hello"


def test_culprits_follow_the_reference_rules_per_platform():
    from eventpipe.pipeline.grouping import frame_culprit, stacktrace_culprit

    frame = {"module": "app/views", "filename": "views.js", "function": "save"}
    assert frame_culprit(frame, "javascript") == "save(app/views)"
    assert frame_culprit({"filename": "a.js"}, "node") == "?(a.js)"
    assert frame_culprit({"function": "main"}, "python") == ""  # neither module nor filename
    assert frame_culprit({"function": "objc_msgSend", "filename": "x"}, "cocoa") == "objc_msgSend"
    assert frame_culprit({"module": "m", "function": "f", "platform": "native"}, "python") == "f"
    # no in-app frame: the top (last) frame; an in-app frame wins over later library frames
    lib = [{"module": "lib.a", "function": "x", "in_app": False}, {"module": "lib.b", "function": "y", "in_app": False}]
    assert stacktrace_culprit(lib, "python") == "lib.b in y"
    assert stacktrace_culprit([{"module": "app", "function": "f", "in_app": True}, *lib], "python") == "app in f"


def test_unlabeled_and_stacktrace_only_events():
    empty = ev()
    assert title_and_culprit(empty) == ("<unlabeled event>", "")
    st = ev(stacktrace={"frames": [{"module": "raven.base", "function": "main", "in_app": False}]})
    assert title_and_culprit(st) == ("<unlabeled event>", "raven.base in main")
    assert fingerprint_hash(st) != fingerprint_hash(empty)


def test_long_titles_are_truncated_like_the_reference():
    title, _ = title_and_culprit(ev(message="x" * 150))
    assert title == "x" * 97 + "..."
    synthetic = ev(exception={"values": [{"type": "SIGSEGV", "mechanism": {"synthetic": True}, "stacktrace": {"frames": [
        {"function": "crash_here", "in_app": True}]}}]})
    assert title_and_culprit(synthetic) == ("crash_here", "")
