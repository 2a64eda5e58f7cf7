"""The shape of a real Python SDK error event, about 50 KB of JSON, for benchmarks and profiles.

Why: the demo's 1-2 KB events hide where the time goes. A Django request failing 40 frames deep
carries source context (5 lines before and after each frame), local variables, 30 breadcrumbs
(SQL, HTTP, logging), the request with headers, cookies and form data, user, tags and contexts.
That is what costs CPU in scrubbing, trimming, JSON and compression. Secrets appear where real
apps leak them (an Authorization header, a session cookie, a password in form data and in a frame
variable, a card number in a log line), so scrubbing does real work. Deterministic for a
``random.Random``; pure."""

from __future__ import annotations

import random
import uuid
from typing import Any

N_FRAMES = 40
N_BREADCRUMBS = 30
CONTEXT_LINES = 5

_APP_MODULES = [
    ("shop.views.checkout", "/srv/shop/shop/views/checkout.py", ["post", "validate_cart", "apply_coupon"]),
    ("shop.services.payments", "/srv/shop/shop/services/payments.py", ["charge", "authorize_card", "capture"]),
    ("shop.services.inventory", "/srv/shop/shop/services/inventory.py", ["reserve", "release", "check_stock"]),
    ("shop.models.order", "/srv/shop/shop/models/order.py", ["save", "total", "line_items"]),
    ("shop.integrations.gateway", "/srv/shop/shop/integrations/gateway.py", ["request", "_sign", "_parse_response"]),
]
_LIB_MODULES = [
    ("django.core.handlers.exception", "/usr/lib/python3.12/site-packages/django/core/handlers/exception.py", ["inner"]),
    ("django.core.handlers.base", "/usr/lib/python3.12/site-packages/django/core/handlers/base.py", ["_get_response"]),
    ("django.views.generic.base", "/usr/lib/python3.12/site-packages/django/views/generic/base.py", ["view", "dispatch"]),
    ("django.db.models.query", "/usr/lib/python3.12/site-packages/django/db/models/query.py", ["get", "__iter__", "_fetch_all"]),
    ("django.db.backends.utils", "/usr/lib/python3.12/site-packages/django/db/backends/utils.py", ["execute", "_execute"]),
    ("requests.sessions", "/usr/lib/python3.12/site-packages/requests/sessions.py", ["request", "send"]),
    ("urllib3.connectionpool", "/usr/lib/python3.12/site-packages/urllib3/connectionpool.py", ["urlopen", "_make_request"]),
]
_NAMES = ["order", "cart", "user", "response", "payload", "items", "total", "coupon", "session", "result",
          "amount", "currency", "retries", "timeout", "headers", "line", "sku", "quantity", "price", "state"]
_CODE = [
    "{a} = {b}.get({c!r})", "if not {a}:", "    raise ValueError(f\"invalid {a}: {{{b}}}\")",
    "for {a} in {b}.{c}.all():", "    {a}.total += {b}.price * {b}.quantity", "return {a}",
    "logger.info(\"processing %s for %s\", {a}, {b})", "{a} = self._client.request(\"POST\", url, json={b})",
    "with transaction.atomic():", "    {a}.save(update_fields=[{c!r}])", "except {c}Error as exc:",
    "    raise PaymentFailed({a}) from exc", "{a} = Decimal({b}) * Decimal(\"1.{n}\")", "# {c}: see ticket {n}",
    "self.{a} = {b}", "yield from self._{a}({b})", "{a}: dict[str, Any] = {{}}", "assert {a} is not None, {b!r}",
]


def _line(rng: random.Random) -> str:
    return rng.choice(_CODE).format(a=rng.choice(_NAMES), b=rng.choice(_NAMES), c=rng.choice(_NAMES), n=rng.randrange(1000))


def _vars(rng: random.Random, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"self": f"<{rng.choice(['CheckoutView', 'PaymentService', 'Order'])} object at 0x7f{rng.getrandbits(40):010x}>"}
    for name in rng.sample(_NAMES, 6 if depth == 0 else 3):
        kind = rng.randrange(6)
        if kind == 0:
            out[name] = rng.randrange(100000)
        elif kind == 1:
            out[name] = f"'{rng.choice(_NAMES)}-{rng.getrandbits(32):08x}'"
        elif kind == 2 and depth < 1:
            out[name] = _vars(rng, depth + 1)
        elif kind == 3:
            out[name] = [f"<LineItem sku={rng.randrange(10**6)} qty={rng.randrange(1, 9)}>" for _ in range(rng.randrange(1, 5))]
        elif kind == 4:
            out[name] = None
        else:
            out[name] = f"Decimal('{rng.randrange(10**5)}.{rng.randrange(100):02d}')"
    return out


def _frame(rng: random.Random, i: int) -> dict[str, Any]:
    in_app = i >= 8 and rng.random() < 0.7
    module, path, functions = rng.choice(_APP_MODULES if in_app else _LIB_MODULES)
    lineno = rng.randrange(20, 900)
    frame: dict[str, Any] = {
        "module": module,
        "filename": path.split("/site-packages/")[-1] if in_app is False else path.removeprefix("/srv/shop/"),
        "abs_path": path,
        "function": rng.choice(functions),
        "lineno": lineno,
        "in_app": in_app,
        "pre_context": [_line(rng) for _ in range(CONTEXT_LINES)],
        "context_line": _line(rng),
        "post_context": [_line(rng) for _ in range(CONTEXT_LINES)],
        "vars": _vars(rng, 0),
    }
    if i == N_FRAMES - 3:
        frame["vars"]["password"] = "correct horse battery staple"  # leaked by a login helper
    return frame


def _breadcrumb(rng: random.Random, ts: float, i: int) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        return {"type": "default", "category": "query", "timestamp": ts, "level": "info",
                "message": f"SELECT \"shop_order\".\"id\", \"shop_order\".\"state\", \"shop_order\".\"total\" FROM \"shop_order\" "
                           f"WHERE \"shop_order\".\"user_id\" = {rng.randrange(10**5)} ORDER BY \"shop_order\".\"created\" DESC LIMIT 21",
                "data": {"db.system": "postgresql", "duration_ms": round(rng.uniform(0.2, 40), 3)}}
    if kind == 1:
        return {"type": "http", "category": "httplib", "timestamp": ts, "level": "info",
                "data": {"url": f"https://api.payments.example.net/v2/charges/ch_{rng.getrandbits(64):016x}", "method": "POST",
                         "status_code": rng.choice([200, 201, 402, 502]), "reason": rng.choice(["OK", "Created", "Payment Required", "Bad Gateway"])}}
    if kind == 2:
        message = f"charging card 4111 1111 1111 1111 for order {rng.randrange(10**6)}" if i == 7 else \
            f"cart {rng.getrandbits(32):08x} recalculated: {rng.randrange(1, 20)} items, total {rng.randrange(10**4)}.{rng.randrange(100):02d} EUR"
        return {"type": "default", "category": "shop.checkout", "timestamp": ts, "level": rng.choice(["info", "warning"]), "message": message}
    return {"type": "navigation", "category": "navigation", "timestamp": ts, "level": "info",
            "data": {"from": f"/cart/{rng.randrange(10**5)}/", "to": f"/checkout/{rng.randrange(10**5)}/payment/"}}


def large_event(rng: random.Random, now: float) -> dict[str, Any]:
    """One ~50 KB Python exception event (a payment failing deep inside a Django checkout)."""
    timestamp = now - rng.uniform(0, 36 * 3600)
    frames = [_frame(rng, i) for i in range(N_FRAMES)]
    crumbs = [_breadcrumb(rng, timestamp - (N_BREADCRUMBS - i) * rng.uniform(0.05, 2.0), i) for i in range(N_BREADCRUMBS)]
    order = rng.randrange(10**6)
    return {
        "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        "timestamp": timestamp,
        "platform": "python",
        "level": "error",
        "logger": "django.request",
        "release": f"shop@2.{rng.randrange(30)}.{rng.randrange(10)}",
        "environment": rng.choice(["production", "production", "staging"]),
        "server_name": f"web-{rng.randrange(12)}.eu-west-1.internal",
        "transaction": "/checkout/{order_id}/payment/",
        "exception": {"values": [{
            "type": rng.choice(["PaymentFailed", "GatewayTimeout", "IntegrityError"]),
            "value": f"charge for order {order} failed: gateway answered {rng.choice([402, 502, 504])}",
            "module": "shop.services.payments",
            "mechanism": {"type": "django", "handled": False},
            "stacktrace": {"frames": frames},
        }]},
        "breadcrumbs": {"values": crumbs},
        "request": {
            "url": f"https://shop.example.com/checkout/{order}/payment/",
            "method": "POST",
            "query_string": f"step=confirm&utm_source=newsletter&ref={rng.getrandbits(32):08x}",
            "headers": {
                "Host": "shop.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "Accept-Language": "en-GB,en;q=0.9,de;q=0.7",
                "Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {rng.getrandbits(128):032x}",
                "X-Forwarded-For": f"203.0.113.{rng.randrange(255)}", "X-Request-Id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            },
            "cookies": {"sessionid": f"{rng.getrandbits(128):032x}", "csrftoken": f"{rng.getrandbits(128):032x}", "theme": "dark"},
            "data": {"card_holder": "A. Customer", "password": "hunter2", "coupon": rng.choice(["", "WINTER10"]), "quantity": str(rng.randrange(1, 5))},
            "env": {"REMOTE_ADDR": f"10.0.{rng.randrange(255)}.{rng.randrange(255)}", "SERVER_NAME": "shop.example.com", "SERVER_PORT": "443"},
        },
        "user": {"id": str(rng.randrange(10**6)), "email": f"customer{rng.randrange(10**6)}@example.com", "ip_address": f"203.0.113.{rng.randrange(255)}"},
        "tags": {"browser": "Chrome 131", "os": "Linux", "url": f"/checkout/{order}/payment/", "payment_provider": rng.choice(["adyen", "stripe"]),
                 "region": rng.choice(["eu-west-1", "us-east-1"]), "handled": "no", "mechanism": "django", "level": "error"},
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.12.7", "build": "3.12.7 (main, Oct  1 2024, 08:52:12) [GCC 12.2.0]"},
            "os": {"name": "Linux", "version": "6.1.0-26-amd64"},
            "trace": {"trace_id": f"{rng.getrandbits(128):032x}", "span_id": f"{rng.getrandbits(64):016x}", "op": "http.server", "status": "internal_error"},
        },
        "extra": {"sys.argv": ["/srv/shop/venv/bin/gunicorn", "shop.wsgi", "--workers", "4"], "order_id": order, "attempt": rng.randrange(1, 4)},
        "sdk": {"name": "sentry.python.django", "version": "2.19.2", "packages": [{"name": "pypi:sentry-sdk", "version": "2.19.2"}]},
    }
