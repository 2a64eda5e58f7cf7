"""Realistic demo traffic: error events from a few projects, with repeats and malformed ones
(a non-object is rejected; the other malformed events are repaired and their defects recorded).

Deterministic for a seed (ids, choices, offsets), so two runs with one seed submit the same
events and the second changes no total. Pure: returns data, performs no I/O.

``generate(..., large=True)`` gives what a real Python SDK sends instead of the 1-2 KB default:
about 50 KB per event (40 frames with source context and local variables, 30 breadcrumbs, a
full request, user, tags and contexts), the size benchmarks and profiles need."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from .demo_large import large_event

DEMO_PROJECTS: dict[int, tuple[str, str]] = {
    1: ("backend-api", "python"),
    2: ("web-frontend", "javascript"),
    3: ("billing-worker", "java"),
}

_PY_LIB = {"module": "django.core.handlers.base", "function": "_get_response", "filename": "/usr/lib/python3/site-packages/django/core/handlers/base.py"}
_JS_LIB = {"module": "react-dom", "function": "commitRoot", "filename": "node_modules/react-dom/cjs/react-dom.production.js"}
_JAVA_LIB = {"module": "java.util.concurrent.ThreadPoolExecutor", "function": "runWorker", "filename": "ThreadPoolExecutor.java"}

# (project, exception type, value template, in-app frames (module, function, filename), library frame)
EXCEPTIONS: list[tuple[int, str, str, list[tuple[str, str, str]], dict[str, str]]] = [
    (1, "KeyError", "'user_id'", [("app.views.profile", "get_profile", "app/views/profile.py"), ("app.services.users", "load_user", "app/services/users.py")], _PY_LIB),
    (1, "ZeroDivisionError", "division by zero", [("app.reports.stats", "ratio", "app/reports/stats.py")], _PY_LIB),
    (1, "OperationalError", "could not connect to server: Connection refused (port {n})", [("app.db.pool", "connect", "app/db/pool.py")], _PY_LIB),
    (1, "ValueError", "invalid literal for int() with base 10: '{w}'", [("app.api.orders", "parse_quantity", "app/api/orders.py"), ("app.api.orders", "create_order", "app/api/orders.py")], _PY_LIB),
    (2, "TypeError", "Cannot read properties of undefined (reading '{w}')", [("src/components/Cart", "renderItems", "src/components/Cart.jsx")], _JS_LIB),
    (2, "ChunkLoadError", "Loading chunk {n} failed.", [("src/router", "loadRoute", "src/router.js")], _JS_LIB),
    (3, "java.lang.NullPointerException", "Cannot invoke \"Invoice.total()\" because \"invoice\" is null", [("com.acme.billing.InvoiceService", "charge", "InvoiceService.java"), ("com.acme.billing.ChargeJob", "run", "ChargeJob.java")], _JAVA_LIB),
    (3, "java.net.SocketTimeoutException", "Read timed out after {n} ms", [("com.acme.billing.PaymentGateway", "authorize", "PaymentGateway.java")], _JAVA_LIB),
]

MESSAGES: list[tuple[int, str]] = [
    (1, "Payment webhook for order %s arrived twice"),
    (1, "Slow query took %s ms"),
    (2, "User %s hit the rate limit"),
    (3, "Retrying invoice %s after gateway error"),
]

MALFORMED: list[Any] = [
    ["not", "an", "object"],
    {"event_id": "not-a-valid-id", "message": "broken id"},
    {"message": "bad time", "timestamp": "yesterday at noon"},
    {"exception": "Traceback (most recent call last): ..."},
    {"message": "fingerprint must be a list", "fingerprint": "custom"},
    {"level": "error", "tags": {"a": "b"}},
]
_WORDS = ["price", "length", "map", "id", "items", "abc", "12x", "none"]
_LEVELS = ["error", "error", "error", "warning", "fatal", "info"]


@dataclass(frozen=True)
class DemoEvent:
    project_id: int
    payload: Any  # a JSON value: usually an event object, sometimes malformed on purpose


def generate(n: int, seed: int = 0, *, now: float, large: bool = False) -> list[DemoEvent]:
    """``n`` events; about 2% repeat an earlier event id and 2% are malformed.

    ``large``: every event is a distinct, valid ~50 KB Python exception instead (see
    :func:`large_event`); no repeats, no malformed ones, so a benchmark's count is its work."""
    if large:
        rng = random.Random(seed)
        return [DemoEvent(1, large_event(rng, now)) for _ in range(n)]
    rng = random.Random(seed)
    out: list[DemoEvent] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.02 and out:
            earlier = out[rng.randrange(len(out))]
            out.append(earlier)  # a client resending the same event
            continue
        if roll < 0.04:
            payload = rng.choice(MALFORMED)
            if isinstance(payload, dict) and "event_id" not in payload:
                # repaired on ingest (recorded in the event's errors); a fixed id keeps reruns idempotent
                payload = {**payload, "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex}
            out.append(DemoEvent(rng.choice(list(DEMO_PROJECTS)), payload))
            continue
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        timestamp = now - rng.uniform(0, 36 * 3600)
        if roll < 0.22:
            project_id, template = rng.choice(MESSAGES)
            event = _message_event(rng, project_id, template)
        else:
            event = _exception_event(rng, rng.randrange(len(EXCEPTIONS)))
            project_id = event.pop("_project")
        if roll > 0.97:
            event["fingerprint"] = ["{{ default }}", f"tenant-{rng.randrange(3)}"]
        event.update(event_id=event_id, timestamp=timestamp)
        out.append(DemoEvent(project_id, event))
        del i
    return out


def _common(rng: random.Random, project_id: int) -> dict[str, Any]:
    return {
        "platform": DEMO_PROJECTS[project_id][1],
        "level": rng.choice(_LEVELS),
        "release": f"{DEMO_PROJECTS[project_id][0]}@1.{rng.randrange(4)}.0",
        "environment": rng.choice(["production", "production", "staging"]),
        "server_name": f"host-{rng.randrange(8)}",
        "tags": {"browser": rng.choice(["Chrome", "Firefox", "Safari"]), "region": rng.choice(["eu", "us"])},
        "user": {"id": str(rng.randrange(5000)), "email": f"user{rng.randrange(5000)}@example.com"},
        "request": {
            "url": f"https://shop.example.com/api/v1/orders?token=tok_{rng.getrandbits(40):x}",
            "headers": {"Authorization": f"Bearer {rng.getrandbits(64):x}abcdef", "User-Agent": "Mozilla/5.0"},
            "data": {"password": "hunter2", "quantity": rng.randrange(10)},
        },
        "extra": {"db_password": "s3cr3t", "attempt": rng.randrange(5)},
    }


def _message_event(rng: random.Random, project_id: int, template: str) -> dict[str, Any]:
    event = _common(rng, project_id)
    param = str(rng.randrange(100000))
    event["logentry"] = {"message": template, "params": [param]}
    event["level"] = rng.choice(["warning", "info", "error"])
    return event


def _exception_event(rng: random.Random, which: int) -> dict[str, Any]:
    project_id, etype, value, app_frames, lib_frame = EXCEPTIONS[which]
    event = _common(rng, project_id)
    frames = [dict(lib_frame, lineno=rng.randrange(10, 900), in_app=False)]
    for module, function, filename in app_frames:
        frames.append(
            {
                "module": module,
                "function": function,
                "filename": filename,
                "lineno": rng.randrange(10, 400),  # line numbers move between releases; grouping ignores them
                "vars": {"session_token": "abc123secret", "count": rng.randrange(100)},
            }
        )
    event["exception"] = {
        "values": [
            {
                "type": etype,
                "value": value.format(n=rng.randrange(1, 9999), w=rng.choice(_WORDS)),
                "stacktrace": {"frames": frames},
            }
        ]
    }
    event["_project"] = project_id
    return event
