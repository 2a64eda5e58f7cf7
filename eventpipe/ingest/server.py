"""The HTTP ingest endpoint: Sentry's store and envelope protocols on Starlette.

Every request is authenticated with the project's ingest key (``X-Sentry-Auth: Sentry
sentry_key=…``, ``Authorization: DSN …`` or ``?sentry_key=``), compared in constant time. Bodies
are read as a stream through their Content-Encoding decoder (br, gzip, deflate; legacy base64+zlib
store bodies) and stop at the size limit: an event at ``max_event_bytes``, an envelope's
attachments at ``max_attachment_bytes`` on top. Each project has a token-bucket rate limit that
answers 429 with ``Retry-After`` and ``X-Sentry-Rate-Limits`` (the SDKs back off). Browser SDKs
get CORS answers per the project's allowed origins. Every 4xx names its reason (``reason`` in the
JSON body), is counted by reason and logged once (rate-limited). Transactions, sessions, client
reports, check-ins and other non-error items are answered 200, counted and dropped. Accepted
means confirmed by the broker (see ingest.submit).
"""

from __future__ import annotations

import asyncio

import hmac
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy.exc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventpipe.ingest.cors import cors_headers, origin_allowed, parse_origins, preflight_headers
from eventpipe.ingest.decode import BodyTooLarge, UndecodableBody, decode_legacy_store_body, decoder_for
from eventpipe.ingest.observe import BODIES, RejectionLog, count_items
from eventpipe.ingest.stored import store_attachments
from eventpipe.errors import EventpipeError
from eventpipe.ingest.batcher import AsyncGroupCommit
from eventpipe.ingest.checkins import checkin_routes, envelope_checkins, record_payload
from eventpipe.ingest.submit import Batch, SubmitError, Submitter, SubmitResult
from eventpipe.metadata.models import Project
from eventpipe.pipeline.envelope import Envelope, parse_envelope
from eventpipe.pipeline.errors import InvalidEvent
from eventpipe.pipeline.interfaces import resolve_auto_ip
from eventpipe.pipeline.jsonload import loads_tolerant

if TYPE_CHECKING:
    from eventpipe.config import Settings
    from eventpipe.metadata.db import Database
    from eventpipe.tasks.api import TaskContext


class IngestRuntime(Protocol):
    """What the endpoint needs of the runtime (``eventpipe.runtime.Runtime`` has it): a shape, so
    this module does not import the composition root above it."""

    context: TaskContext
    db: Database
    settings: Settings

_KEY_RE = re.compile(r"sentry_key=([0-9a-fA-F]+)|^\s*DSN\s+\S*?://([0-9a-fA-F]+)[:@]")
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024  # per envelope, as the reference system
_EVENT_KEYS = ("exception", "message", "logentry", "stacktrace", "sentry.interfaces.Exception", "sentry.interfaces.Message")


class Rejected(Exception):
    """A 4xx (or 503) answer: ``reason`` is a stable code, ``detail`` says what to do."""

    def __init__(self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.headers = status, reason, detail, headers or {}


@dataclass
class TokenBucket:
    """Per-project rate limit: ``rate`` events/s with bursts up to ``burst``."""

    rate: float
    burst: float
    tokens: dict[int, tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, project_id: int, n: int = 1) -> float:
        """0 if allowed, else the seconds to wait before retrying."""
        now = time.monotonic()
        with self.lock:
            level, last = self.tokens.get(project_id, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level >= n:
                self.tokens[project_id] = (level - n, now)
                return 0.0
            self.tokens[project_id] = (level, now)
            return (n - level) / self.rate


@dataclass(frozen=True)
class ProjectAccess:
    ingest_key: str
    origins: list[str]


def classify_json(data: dict[str, Any]) -> str:
    """What a JSON object posted to the store endpoint is: an event, or an item we drop."""
    if data.get("type") == "transaction":
        return "transaction"
    if "monitor_slug" in data and "status" in data:
        return "check_in"
    if "discarded_events" in data:
        return "client_report"
    if "aggregates" in data and "attrs" in data:
        return "sessions"
    if "sid" in data and "status" in data and not any(k in data for k in _EVENT_KEYS):
        return "session"
    return "event"


def create_app(rt: IngestRuntime, *, rate_per_project: float = 1000.0, burst: float = 2000.0) -> Starlette:
    limiter = TokenBucket(rate_per_project, burst)
    submitter = Submitter(rt.context)
    batcher: AsyncGroupCommit[Batch, SubmitResult | SubmitError] | None = None

    async def submit_events(project_id: int, events: list[Any]) -> SubmitResult:
        """The one call into the accept path: coalesced with concurrent requests."""
        nonlocal batcher
        if batcher is None:  # created on the server's event loop
            batcher = AsyncGroupCommit(submitter.submit_batches)
        try:
            # Never hang a client on a broker that is blocked (memory alarm) or gone: past the
            # deadline it gets 503 + Retry-After and resends; a late publish is absorbed at save.
            outcome = await asyncio.wait_for(batcher.submit((project_id, events)), rt.settings.ingest_deadline_seconds)
        except TimeoutError:
            raise SubmitError(f"not confirmed within {rt.settings.ingest_deadline_seconds:g} s (broker or body store slow or "
                              "unreachable); resend the event") from None
        if isinstance(outcome, SubmitError):
            raise outcome
        return outcome

    rejections = RejectionLog()
    cache: dict[int, tuple[float, ProjectAccess | None]] = {}
    event_limit = rt.settings.max_event_bytes
    attachment_limit = getattr(rt.settings, "max_attachment_bytes", MAX_ATTACHMENT_BYTES)

    def project_access(project_id: int) -> ProjectAccess | None:
        """The project's key and origins, cached 10 s. With the database down, a key seen before
        keeps working (ingest needs no database); an unknown one is answered 503, not 500."""
        cached = cache.get(project_id)
        if cached is not None and time.monotonic() - cached[0] < 10:
            return cached[1]
        try:
            with rt.db.session() as s:
                project = s.get(Project, project_id)
                access = ProjectAccess(project.ingest_key, parse_origins(project.allowed_origins)) if project else None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if cached is not None:
                return cached[1]
            raise Rejected(503, "unavailable", f"cannot check the project key: the metadata database is unreachable ({type(exc).__name__})",
                           {"Retry-After": "5"}) from None
        cache[project_id] = (time.monotonic(), access)
        return access

    def authenticate(request: Request, project_id: int) -> ProjectAccess:
        given = None
        for header in ("x-sentry-auth", "authorization"):
            match = _KEY_RE.search(request.headers.get(header, ""))
            if match:
                given = match.group(1) or match.group(2)
                break
        given = given or request.query_params.get("sentry_key")
        if not given:
            raise Rejected(401, "missing_key", "missing project key: send X-Sentry-Auth: Sentry sentry_key=<ingest key>")
        access = project_access(project_id)
        expected = access.ingest_key if access else None
        # compare against something even for unknown projects, so timing tells nothing
        if not hmac.compare_digest(given.encode(), (expected or "x" * len(given)).encode()) or access is None:
            raise Rejected(403, "wrong_key", "the key does not match this project; check the DSN")
        return access

    def check_origin(request: Request, access: ProjectAccess | None) -> None:
        origin = request.headers.get("origin")
        if origin and (access is None or not origin_allowed(origin, access.origins)):
            raise Rejected(
                403, "forbidden_origin",
                f"origin {origin[:100]!r} is not allowed for this project; add it with `eventpipe projects add ID NAME --origin URL`",
            )

    async def read_body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Rejected(413, "too_large", f"body of {declared} bytes exceeds the {limit}-byte limit")
        try:
            decoder = decoder_for(request.headers.get("content-encoding"), limit)
            out = bytearray()
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise BodyTooLarge(limit, "body")
                out += decoder.feed(chunk)
                if len(out) > limit:
                    raise BodyTooLarge(limit)
            out += decoder.finish()
            BODIES.labels(encoding=(request.headers.get("content-encoding") or "identity").strip().lower()).inc()
        except BodyTooLarge as exc:
            raise Rejected(413, "too_large", str(exc)) from None
        except UndecodableBody as exc:
            raise Rejected(400, "undecodable_body", str(exc)) from None
        return bytes(out)

    def rate_limit(project_id: int, n: int) -> None:
        wait = limiter.take(project_id, n)
        if wait:
            seconds = str(max(1, round(wait)))
            raise Rejected(
                429, "rate_limited", "rate limit exceeded for this project; retry after Retry-After seconds",
                {"Retry-After": seconds, "X-Sentry-Rate-Limits": f"{seconds}::project"},
            )

    async def accept(project_id: int, events: list[Any]) -> SubmitResult:
        try:
            result = await submit_events(project_id, events)
        except SubmitError as exc:
            raise Rejected(503, "unavailable", str(exc), {"Retry-After": "5"}) from None
        if result.rejected:
            r = result.rejected[0]
            raise Rejected(413 if r.reason == "too_large" else 400, r.reason, f"{r.field}: {r.detail}")
        return result

    async def handle_event_json(project_id: int, data: Any, client: str | None) -> JSONResponse:
        if not isinstance(data, dict):
            raise Rejected(400, "not_an_object", f"$: an event must be a JSON object, got {type(data).__name__}")
        kind = classify_json(data)
        if kind != "event":
            count_items(kind, "dropped")
            return JSONResponse({"id": data.get("event_id") if kind == "transaction" else None})
        rate_limit(project_id, 1)
        result = await accept(project_id, [resolve_auto_ip(data, client)])
        count_items("event", "accepted" if result.accepted else "duplicate")
        ids = result.accepted + result.duplicates
        return JSONResponse({"id": ids[0] if ids else None})

    async def handle_envelope(project_id: int, env: Envelope, client: str | None) -> JSONResponse:
        for i, size in enumerate(env.event_sizes):
            if size > event_limit:
                raise Rejected(413, "too_large", f"envelope event item {i}: {size} bytes exceeds the {event_limit}-byte event limit")
        total = sum(len(a.payload) for a in env.attachments)
        if total > attachment_limit:
            raise Rejected(413, "too_large", f"attachments of {total} bytes exceed the {attachment_limit}-byte limit per envelope")
        if env.attachments and not env.event_id and not env.events:
            raise Rejected(400, "invalid_envelope", "envelope.header.event_id: attachments need the event_id of their event")
        for kind, n in env.other_items.items():
            count_items(kind, "dropped", n)
        event_id = env.event_id
        if env.events:
            rate_limit(project_id, len(env.events))
            result = await accept(project_id, [resolve_auto_ip(e, client) for e in env.events])
            count_items("event", "accepted", len(result.accepted))
            count_items("event", "duplicate", len(result.duplicates))
            ids = result.accepted + result.duplicates
            event_id = event_id or (ids[0] if ids else None)
        if env.attachments and event_id:
            await run_in_threadpool(store_attachments, rt.store, project_id, event_id, env.attachments)
            count_items("attachment", "stored", len(env.attachments))
        return JSONResponse({"id": event_id})

    def parse(raw: bytes) -> Envelope:
        try:
            return parse_envelope(raw)
        except InvalidEvent as exc:
            raise Rejected(400, exc.reason, str(exc)) from None

    async def store(request: Request, project_id: int, client: str | None) -> Response:
        raw = await read_body(request, event_limit)
        try:
            raw = decode_legacy_store_body(raw, event_limit)
        except BodyTooLarge as exc:
            raise Rejected(413, "too_large", str(exc)) from None
        except UndecodableBody as exc:
            raise Rejected(400, "undecodable_body", str(exc)) from None
        try:
            data = loads_tolerant(raw)
        except ValueError as exc:
            if b"\n" in raw.strip():  # an envelope sent to the store endpoint
                return await handle_envelope(project_id, parse(raw), client)
            raise Rejected(400, "invalid_json", f"body is not JSON: {exc}") from None
        return await handle_event_json(project_id, data, client)

    async def envelope(request: Request, project_id: int, client: str | None) -> Response:
        raw = await read_body(request, event_limit + attachment_limit)
        env = parse(raw)
        if env.other_items.get("check_in"):  # cron monitors' check-ins are recorded, not dropped
            for payload in envelope_checkins(raw):
                try:
                    await run_in_threadpool(record_payload, rt, project_id, None, payload)
                    count_items("check_in", "recorded")
                except EventpipeError:  # no such monitor: the SDK is not told off (never a 4xx), it is dropped
                    count_items("check_in", "unknown_monitor")
        if not env.events and not env.attachments and not env.other_items and any(k in env.header for k in _EVENT_KEYS):
            return await handle_event_json(project_id, env.header, client)  # a plain JSON event
        return await handle_envelope(project_id, env, client)

    def endpoint(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            project_id = int(request.path_params["project_id"])
            client = request.client.host if request.client else None
            origin = request.headers.get("origin")
            access: ProjectAccess | None = None
            try:
                access = authenticate(request, project_id)
                check_origin(request, access)
                response = await handler(request, project_id, client)
            except Rejected as r:
                if r.status != 503:
                    rejections.rejected(status=r.status, reason=r.reason, project_id=project_id, client=client, detail=r.detail)
                response = JSONResponse(
                    {"detail": r.detail, "reason": r.reason}, status_code=r.status, headers={**r.headers, "X-Sentry-Error": r.detail[:200]}
                )
            if origin and access is not None and origin_allowed(origin, access.origins):
                response.headers.update(cors_headers(origin))
            return response

        return run

    async def preflight(request: Request) -> Response:
        project_id = int(request.path_params["project_id"])
        origin = request.headers.get("origin", "")
        access = project_access(project_id)
        if not origin or access is None or not origin_allowed(origin, access.origins):
            detail = f"origin {origin[:100]!r} is not allowed for project {project_id}"
            rejections.rejected(status=403, reason="forbidden_origin", project_id=project_id,
                                client=request.client.host if request.client else None, detail=detail)
            return JSONResponse({"detail": detail, "reason": "forbidden_origin"}, status_code=403)
        return Response(status_code=200, headers=preflight_headers(origin))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/api/{project_id:int}/store/", endpoint(store), methods=["POST"]),
            Route("/api/{project_id:int}/envelope/", endpoint(envelope), methods=["POST"]),
            Route("/api/{project_id:int}/store/", preflight, methods=["OPTIONS"]),
            Route("/api/{project_id:int}/envelope/", preflight, methods=["OPTIONS"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *checkin_routes(rt),
        ]
    )
