"""The HTTP ingest endpoint: Sentry's store and envelope protocols on Starlette.

Every request is authenticated with the project's ingest key (``X-Sentry-Auth: Sentry
sentry_key=…``, ``Authorization: DSN …`` or ``?sentry_key=``), compared in constant time; bodies
are size-limited before they are read whole; each project has a token-bucket rate limit that
answers 429 with ``Retry-After``. Accepted means confirmed by the broker (see ingest.submit).
"""

from __future__ import annotations

import hmac
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from eventpipe.ingest.batcher import AsyncGroupCommit
from eventpipe.ingest.submit import Batch, SubmitError, Submitter, SubmitResult
from eventpipe.metadata.models import Project
from eventpipe.pipeline.envelope import parse_envelope
from eventpipe.pipeline.errors import InvalidEvent

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

_KEY_RE = re.compile(r"sentry_key=([0-9a-fA-F]+)")


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


def _error(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def create_app(rt: IngestRuntime, *, rate_per_project: float = 1000.0, burst: float = 2000.0) -> Starlette:
    limiter = TokenBucket(rate_per_project, burst)
    submitter = Submitter(rt.context)
    batcher: AsyncGroupCommit[Batch, SubmitResult | SubmitError] | None = None

    async def submit(project_id: int, events: list[Any]) -> SubmitResult:
        """The one call into the accept path: coalesced with concurrent requests."""
        nonlocal batcher
        if batcher is None:  # created on the server's event loop
            batcher = AsyncGroupCommit(submitter.submit_batches)
        outcome = await batcher.submit((project_id, events))
        if isinstance(outcome, SubmitError):
            raise outcome
        return outcome
    keys: dict[int, tuple[float, str | None]] = {}

    def ingest_key(project_id: int) -> str | None:
        cached = keys.get(project_id)
        if cached is not None and time.monotonic() - cached[0] < 10:
            return cached[1]
        with rt.db.session() as s:
            project = s.get(Project, project_id)
            key = project.ingest_key if project is not None else None
        keys[project_id] = (time.monotonic(), key)
        return key

    def authenticate(request: Request, project_id: int) -> JSONResponse | None:
        given = None
        for header in ("x-sentry-auth", "authorization"):
            match = _KEY_RE.search(request.headers.get(header, ""))
            if match:
                given = match.group(1)
                break
        given = given or request.query_params.get("sentry_key")
        if not given:
            return _error(401, "missing project key: send X-Sentry-Auth: Sentry sentry_key=<ingest key>")
        expected = ingest_key(project_id)
        # compare against something even for unknown projects, so timing tells nothing
        if not hmac.compare_digest(given.encode(), (expected or "x" * len(given)).encode()) or expected is None:
            return _error(403, "the key does not match this project; check the DSN")
        return None

    async def read_body(request: Request) -> bytes | JSONResponse:
        limit = rt.settings.max_event_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(413, f"body of {declared} bytes exceeds the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return _error(413, f"body exceeds the {limit}-byte limit")
            chunks.append(chunk)
        raw = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            try:
                inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
                raw = inflater.decompress(raw, limit + 1)
            except zlib.error as exc:
                return _error(400, f"cannot decompress the {encoding} body: {exc}")
            if len(raw) > limit or inflater.unconsumed_tail:
                return _error(413, f"decompressed body exceeds the {limit}-byte limit")
        return raw

    async def accept(request: Request, events: list[Any], project_id: int) -> JSONResponse:
        wait = limiter.take(project_id, max(1, len(events)))
        if wait:
            return _error(429, "rate limit exceeded for this project", **{"Retry-After": str(max(1, round(wait)))})
        try:
            result = await submit(project_id, events)
        except SubmitError as exc:
            return _error(503, str(exc), **{"Retry-After": "5"})
        if result.rejected:
            r = result.rejected[0]
            return _error(400, f"{r.field}: {r.detail}")
        ids = result.accepted + result.duplicates
        return JSONResponse({"id": ids[0] if ids else None})

    async def authorized_body(request: Request) -> tuple[int, bytes] | JSONResponse:
        project_id = int(request.path_params["project_id"])
        denied = authenticate(request, project_id)
        if denied:
            return denied
        raw = await read_body(request)
        return raw if isinstance(raw, JSONResponse) else (project_id, raw)

    async def store(request: Request) -> JSONResponse:
        got = await authorized_body(request)
        if isinstance(got, JSONResponse):
            return got
        project_id, raw = got
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        return await accept(request, [event], project_id)

    async def envelope(request: Request) -> JSONResponse:
        got = await authorized_body(request)
        if isinstance(got, JSONResponse):
            return got
        project_id, raw = got
        try:
            parsed = parse_envelope(raw)
        except InvalidEvent as exc:
            return _error(400, str(exc))
        if not parsed.events:
            return JSONResponse({"id": parsed.header.get("event_id")})
        return await accept(request, parsed.events, project_id)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/{project_id:int}/store/", store, methods=["POST"]),
            Route("/api/{project_id:int}/envelope/", envelope, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )

