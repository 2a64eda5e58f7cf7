"""S3-compatible backend: AWS S3, SeaweedFS, Ceph RGW, Riak CS, MinIO, Garage...

URL: ``s3://[ACCESS_KEY:SECRET@]bucket?endpoint_url=http://127.0.0.1:8333&region=us-east-1``

Options:

* ``endpoint_url`` the server (omit for AWS); ``region`` (default ``us-east-1``)
* credentials: URL userinfo (URL-quote the secret), else the usual AWS chain (``AWS_ACCESS_KEY_ID``/
  ``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, instance roles)
* ``prefix`` put in front of every key; ``create_bucket=1`` creates a missing bucket (off by
  default: a typo in a bucket name should fail, not silently start an empty store)
* ``workers`` bounded thread-pool size for ``get_many``/``put_many`` (default 16)
* ``client=obstore|boto3`` which client serves get/put (default: obstore if installed)
* ``timeout`` connect/read timeout in seconds (default 10); ``addressing=path|virtual`` (default path)

Why two clients: boto3 costs 1-3 ms of CPU per request, so one Python process tops out at a few
hundred objects/s. obstore (Rust) served the same SeaweedFS about 6x faster for get and put in our
measurements (docs/benchmarks-kv.md), so it is the fast path for get/put; boto3 keeps what
obstore does not do or does not expose as we need: bucket creation, HEAD with user metadata,
listing with a prefix, and ``DeleteObjects`` (one request per 1,000 keys).

TTL: S3 has no per-object expiry. A ``ttl`` is stored as user metadata ``ep-expires`` (Unix time)
and honoured on read (``get``/``get_many``/``exists`` treat an expired object as missing);
``keys()`` may still list it. To reclaim the space, add a bucket lifecycle rule (expiration in
days) on the prefix that holds short-lived bodies; eventpipe does not set one itself.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from .base import KVError, KVUnavailable, check_key, redact_url

try:  # optional fast path
    import obstore
    import obstore.exceptions as oex
    from obstore.store import S3Store as _ObS3Store
except ImportError:  # pragma: no cover - obstore is in the s3 extra
    obstore = None  # type: ignore[assignment]
    oex = None  # type: ignore[assignment]

EXPIRES_META = "ep-expires"
T = TypeVar("T")

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_UNAVAILABLE_CODES = {"500", "502", "503", "504", "SlowDown", "ServiceUnavailable", "InternalError",
                      "RequestTimeout", "RequestTimeTooSkewed"}


class S3Store:
    """Objects in one bucket; boto3 for control calls, obstore (when available) for get/put."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.bucket = parsed.hostname or ""
        if not self.bucket:
            raise KVError(f"{redact_url(url)}: no bucket; use s3://bucket?endpoint_url=http://host:port")
        self.prefix = query.get("prefix", "")
        self.endpoint_url = query.get("endpoint_url") or None
        self.region = query.get("region", os.environ.get("AWS_REGION", "us-east-1"))
        self.workers = max(1, int(query.get("workers", "16")))
        timeout = float(query.get("timeout", "10"))
        create = query.get("create_bucket", "0").lower() in ("1", "true", "yes")
        want = query.get("client", "obstore" if obstore is not None else "boto3")
        if want not in ("obstore", "boto3"):
            raise KVError(f"{redact_url(url)}: client must be obstore or boto3")
        if want == "obstore" and obstore is None:
            raise KVError(f"{redact_url(url)}: client=obstore needs `pip install obstore` (eventpipe[s3])")

        session = boto3.session.Session(
            aws_access_key_id=unquote(parsed.username) if parsed.username else None,
            aws_secret_access_key=unquote(parsed.password) if parsed.password else None,
            region_name=self.region,
        )
        style = "path" if query.get("addressing", "path") == "path" else "virtual"
        self.s3: Any = session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=Config(
                max_pool_connections=self.workers + 4,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": style},
            ),
        )
        self._ob: Any = None
        if want == "obstore":
            creds = session.get_credentials()
            frozen = creds.get_frozen_credentials() if creds is not None else None
            kwargs: dict[str, Any] = {"region": self.region,
                                      "virtual_hosted_style_request": style == "virtual",
                                      "client_options": {"timeout": f"{int(timeout)}s",
                                                         "connect_timeout": f"{int(timeout)}s",
                                                         "allow_http": True},
                                      # bounded: a dead endpoint must surface as KVUnavailable in
                                      # seconds, not after obstore's default 3 minutes of retries
                                      "retry_config": {"max_retries": 2,
                                                       "retry_timeout": timedelta(seconds=timeout * 2)}}
            if self.endpoint_url:
                kwargs["endpoint"] = self.endpoint_url
            if frozen is not None:
                kwargs["access_key_id"] = frozen.access_key
                kwargs["secret_access_key"] = frozen.secret_key
                if frozen.token:
                    kwargs["token"] = frozen.token
            else:
                kwargs["skip_signature"] = True
            self._ob = _ObS3Store(self.bucket, **kwargs)
        self.client_name = want
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._ensure_bucket(create)

    # -- plumbing ------------------------------------------------------------------------------
    def _fail(self, what: str, exc: BaseException) -> KVError:
        where = redact_url(self.url)
        if isinstance(exc, bex.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return KVError(f"{where}: {what} refused ({code}); check the credentials and the bucket policy")
            if code in _UNAVAILABLE_CODES:
                return KVUnavailable(f"{where}: {what} failed ({code}); retry later")
            return KVError(f"{where}: {what} failed ({code})")
        if oex is not None and isinstance(exc, oex.PermissionDeniedError | oex.UnauthenticatedError):
            return KVError(f"{where}: {what} refused; check the credentials and the bucket policy")
        # botocore connection/timeout errors, obstore GenericError (network, 5xx after retries)
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return KVUnavailable(f"{where}: {what} failed ({type(exc).__name__}: {text}); retry later")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except KVError:
            raise
        except (bex.BotoCoreError, bex.ClientError, OSError) as exc:
            raise self._fail(what, exc) from None
        except Exception as exc:
            if oex is not None and isinstance(exc, oex.BaseError):
                raise self._fail(what, exc) from None
            raise

    def _ensure_bucket(self, create: bool) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            return
        except bex.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail("bucket check", exc) from None
        except bex.BotoCoreError as exc:
            raise self._fail("bucket check", exc) from None
        if not create:
            raise KVError(f"{redact_url(self.url)}: bucket {self.bucket!r} does not exist; create it, "
                          "or add create_bucket=1 to the URL to let eventpipe create it")
        try:
            self.s3.create_bucket(Bucket=self.bucket)
        except bex.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._fail("bucket creation", exc) from None
        except bex.BotoCoreError as exc:
            raise self._fail("bucket creation", exc) from None

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="eventpipe-s3")
            return self._pool

    @staticmethod
    def _expired(meta: Mapping[str, Any] | None) -> bool:
        if not meta:
            return False
        raw = meta.get(EXPIRES_META)
        return raw is not None and float(raw) <= time.time()

    # -- single-object calls -------------------------------------------------------------------
    def _get_one(self, k: str) -> bytes | None:
        if self._ob is not None:
            try:
                res = obstore.get(self._ob, k)
            except FileNotFoundError:
                return None
            if EXPIRES_META in res.attributes and self._expired(res.attributes):
                return None
            return bytes(res.bytes())
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=k)
        except bex.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND_CODES:
                return None
            raise
        if self._expired(obj.get("Metadata")):
            return None
        return bytes(obj["Body"].read())

    def _put_one(self, k: str, value: bytes, expires: float | None) -> None:
        meta = {EXPIRES_META: f"{expires:.3f}"} if expires is not None else None
        if self._ob is not None:
            obstore.put(self._ob, k, value, attributes=meta) if meta else obstore.put(self._ob, k, value)
            return
        if meta:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=value, Metadata=meta)
        else:
            self.s3.put_object(Bucket=self.bucket, Key=k, Body=value)

    # -- protocol ------------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        k = self._k(key)
        return self._call(f"read of {key!r}", lambda: self._get_one(k))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        full = [self._k(k) for k in wanted]
        if not full:
            return {}
        if len(full) == 1:
            value = self.get(wanted[0])
            return {} if value is None else {wanted[0]: value}
        results = self._call("batch read", lambda: list(self._executor().map(self._get_one, full)))
        return {key: value for key, value in zip(wanted, results, strict=True) if value is not None}

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        k = self._k(key)
        expires = time.time() + ttl if ttl else None
        self._call(f"write of {key!r}", lambda: self._put_one(k, bytes(value), expires))

    def put_many(self, items: Mapping[str, bytes], *, ttl: float | None = None) -> None:
        pairs = [(self._k(k), bytes(v)) for k, v in items.items()]
        if not pairs:
            return
        expires = time.time() + ttl if ttl else None
        if len(pairs) == 1:
            self._call("write", lambda: self._put_one(pairs[0][0], pairs[0][1], expires))
            return
        self._call("batch write",
                   lambda: list(self._executor().map(lambda kv: self._put_one(kv[0], kv[1], expires), pairs)))

    def delete(self, key: str) -> None:
        k = self._k(key)
        self._call(f"delete of {key!r}", lambda: self.s3.delete_object(Bucket=self.bucket, Key=k))

    def delete_many(self, keys: Iterable[str]) -> None:
        """``DeleteObjects``: one request per 1,000 keys; missing keys are not an error in S3."""
        full = list(dict.fromkeys(self._k(k) for k in keys))
        for i in range(0, len(full), 1000):
            chunk = full[i:i + 1000]
            resp = self._call("batch delete", lambda chunk=chunk: self.s3.delete_objects(  # type: ignore[misc]
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}))
            errors = [e for e in resp.get("Errors", []) if e.get("Code") not in ("NoSuchKey",)]
            if errors:
                first = errors[0]
                raise KVUnavailable(f"{redact_url(self.url)}: {len(errors)} deletes failed, first "
                                    f"{first.get('Key')!r}: {first.get('Code')}; retry the batch")

    def exists(self, key: str) -> bool:
        k = self._k(key)

        def head() -> bool:
            try:
                meta = self.s3.head_object(Bucket=self.bucket, Key=k)
            except bex.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND_CODES:
                    return False
                raise
            return not self._expired(meta.get("Metadata"))

        return self._call(f"exists of {key!r}", head)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """ListObjectsV2 pages, in key order (S3 lists lexicographically)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        while True:
            page = self._call("key listing", lambda: next(pages, None))
            if page is None:
                return
            for obj in page.get("Contents", []):
                yield obj["Key"][cut:]

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.s3.close()
