"""A conformance suite every key-value backend must pass: built-ins and third-party plugins alike.

Usage, in a plugin's own tests (needs pytest)::

    from eventpipe.testing.conformance import KeyValueStoreConformance

    class TestMyStore(KeyValueStoreConformance):
        supports_ttl = True

        def make_store(self):
            return MyStore("mystore://127.0.0.1:1234/")     # the raw backend, no codec

        def make_unreachable_store(self):                  # optional: KVUnavailable checks
            return MyStore("mystore://user:s3cret@127.0.0.1:1/")

Each test works under its own random key prefix and deletes what it wrote, so the suite can run
against a shared, real server. The suite checks behaviour, never timing.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from eventpipe.kvstore.base import KeyValueStore, KVBadKey, KVCorrupt, KVUnavailable
from eventpipe.kvstore.codec import MAGIC, CodecStore, encode

BAD_KEYS = ["", "../etc/passwd", "a/../b", "/abs", "trailing/", "has space", "new\nline", "x" * 600, "ü"]


class KeyValueStoreConformance:
    """Subclass it (name the subclass ``Test...``) and implement :meth:`make_store`."""

    #: set False for backends without expiry; the TTL tests are then skipped
    supports_ttl: bool = True
    #: how many keys the "large batch" test uses (crosses the 500/1,000-key chunk limits)
    large_batch: int = 1100
    #: seconds of TTL in the expiry test; raise it for backends with coarse expiry clocks
    ttl_seconds: float = 1.0

    # -- hooks ---------------------------------------------------------------------------------
    def make_store(self) -> KeyValueStore:
        """Return a fresh raw (un-encoded) store connected to a real server."""
        raise NotImplementedError("subclasses return their backend from make_store()")

    def make_unreachable_store(self) -> KeyValueStore | None:
        """Optionally, a store whose URL (with a password in it) points at nothing listening."""
        return None

    # -- fixtures ------------------------------------------------------------------------------
    @pytest.fixture
    def store(self) -> Iterator[KeyValueStore]:
        s = self.make_store()
        try:
            yield s
        finally:
            try:
                s.delete_many(list(s.keys(self._prefix)))
            finally:
                s.close()

    @pytest.fixture(autouse=True)
    def _unique_prefix(self) -> None:
        self._prefix = f"conf-{uuid.uuid4().hex[:12]}/"

    def k(self, name: str) -> str:
        return self._prefix + name

    # -- single keys ---------------------------------------------------------------------------
    def test_missing_reads_none(self, store: KeyValueStore) -> None:
        assert store.get(self.k("missing")) is None
        assert store.exists(self.k("missing")) is False

    def test_put_get_overwrite(self, store: KeyValueStore) -> None:
        key = self.k("1/event")
        store.put(key, b"first")
        assert store.get(key) == b"first"
        store.put(key, b"second, longer than the first")
        assert store.get(key) == b"second, longer than the first"
        store.put(key, b"3")
        assert store.get(key) == b"3"

    def test_binary_safety(self, store: KeyValueStore) -> None:
        values = {
            self.k("all-bytes"): bytes(range(256)) * 4,
            self.k("nul"): b"\x00\x00\x00",
            self.k("empty"): b"",
            self.k("large"): os.urandom(1024 * 1024),
            self.k("utf8-invalid"): b"\xff\xfe\xc3\x28",
        }
        for key, value in values.items():
            store.put(key, value)
        for key, value in values.items():
            got = store.get(key)
            assert got is not None, key
            assert bytes(got) == value, key
        assert store.exists(self.k("empty")), "an empty body exists; it is not the same as a missing key"

    def test_delete_and_delete_missing(self, store: KeyValueStore) -> None:
        key = self.k("gone")
        store.put(key, b"x")
        assert store.exists(key)
        store.delete(key)
        assert store.get(key) is None
        assert not store.exists(key)
        store.delete(key)  # already gone: not an error
        store.delete(self.k("never-existed"))

    def test_key_shapes(self, store: KeyValueStore) -> None:
        keys = [self.k("42/0123456789abcdef0123456789abcdef"), self.k("a:b_c-d.e"), self.k("deep/er/path/x")]
        for key in keys:
            store.put(key, key.encode())
        for key in keys:
            assert store.get(key) == key.encode()

    # -- batches -------------------------------------------------------------------------------
    def test_batch_semantics(self, store: KeyValueStore) -> None:
        items = {self.k(f"b/{i}"): f"value-{i}".encode() * (i + 1) for i in range(20)}
        store.put_many(items)
        missing = [self.k("b/missing-1"), self.k("b/missing-2")]
        got = store.get_many([*items, *missing])
        assert got == items, "get_many returns exactly the present keys, missing ones are omitted"
        assert store.get_many([]) == {}
        store.put_many({})
        store.delete_many([])
        store.put_many({k: b"new" for k in list(items)[:5]})
        assert store.get_many(list(items)[:5]) == {k: b"new" for k in list(items)[:5]}
        store.delete_many([*list(items)[:10], *missing])  # missing keys in a delete batch: fine
        left = store.get_many(list(items))
        assert set(left) == set(list(items)[10:])

    def test_large_batch(self, store: KeyValueStore) -> None:
        items = {self.k(f"big/{i:05d}"): i.to_bytes(4, "big") * 8 for i in range(self.large_batch)}
        store.put_many(items)
        assert store.get_many(list(items)) == items
        assert sorted(store.keys(self.k("big/"))) == sorted(items)
        store.delete_many(list(items))
        assert store.get_many(list(items)) == {}

    def test_batch_get_duplicate_keys(self, store: KeyValueStore) -> None:
        store.put(self.k("dup"), b"d")
        assert store.get_many([self.k("dup"), self.k("dup")]) == {self.k("dup"): b"d"}

    # -- listing -------------------------------------------------------------------------------
    def test_keys_prefix(self, store: KeyValueStore) -> None:
        for name in ["p/a", "p/b", "p/sub/c", "pq/d", "q/e"]:
            store.put(self.k(name), b"1")
        assert sorted(store.keys(self.k("p/"))) == [self.k("p/a"), self.k("p/b"), self.k("p/sub/c")]
        assert sorted(store.keys(self.k("p"))) == [self.k(n) for n in ["p/a", "p/b", "p/sub/c", "pq/d"]]
        assert sorted(store.keys(self._prefix)) == sorted(self.k(n) for n in ["p/a", "p/b", "p/sub/c", "pq/d", "q/e"])
        assert list(store.keys(self.k("nothing/"))) == []
        store.delete(self.k("p/a"))
        assert sorted(store.keys(self.k("p/"))) == [self.k("p/b"), self.k("p/sub/c")]

    # -- key rules -----------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_bad_keys_rejected(self, store: KeyValueStore, bad: str) -> None:
        with pytest.raises(KVBadKey):
            store.put(bad, b"x")
        with pytest.raises(KVBadKey):
            store.get(bad)
        with pytest.raises(KVBadKey):
            store.exists(bad)
        with pytest.raises(KVBadKey):
            store.delete(bad)
        with pytest.raises(KVBadKey):
            store.put_many({self.k("ok"): b"x", bad: b"x"})
        with pytest.raises(KVBadKey):
            store.get_many([self.k("ok"), bad])
        with pytest.raises(KVBadKey):
            store.delete_many([bad])

    # -- codec ---------------------------------------------------------------------------------
    def test_codec_round_trip(self, store: KeyValueStore) -> None:
        codec = CodecStore(store)
        body = b'{"message": "boom", "frames": [' + b'{"f": "handler", "lineno": 12},' * 300 + b"]}"
        codec.put(self.k("c/1"), body)
        assert codec.get(self.k("c/1")) == body
        raw = store.get(self.k("c/1"))
        assert raw is not None and raw.startswith(MAGIC) and len(raw) < len(body), "stored compressed"
        codec.put_many({self.k("c/2"): b"tiny", self.k("c/3"): body})
        assert codec.get_many([self.k("c/2"), self.k("c/3"), self.k("c/4")]) == {
            self.k("c/2"): b"tiny", self.k("c/3"): body}
        store.put(self.k("c/legacy"), b"written before framing")
        assert codec.get(self.k("c/legacy")) == b"written before framing"

    def test_corrupt_body_raises_kvcorrupt(self, store: KeyValueStore) -> None:
        codec = CodecStore(store)
        frame = bytearray(encode(b"precious event body " * 50))
        frame[-3] ^= 0xFF  # flip bits in the payload
        store.put(self.k("bad/1"), bytes(frame))
        plain = bytearray(encode(b"short", compress=False))
        plain[-1] ^= 0x01
        store.put(self.k("bad/2"), bytes(plain))
        for key in (self.k("bad/1"), self.k("bad/2")):
            with pytest.raises(KVCorrupt) as info:
                codec.get(key)
            assert info.value.key == key and key in str(info.value)
            assert info.value.retryable is False
        with pytest.raises(KVCorrupt):
            codec.get_many([self.k("bad/2")])

    # -- TTL -----------------------------------------------------------------------------------
    def test_ttl_expiry(self, store: KeyValueStore) -> None:
        if not self.supports_ttl:
            pytest.skip("backend has no TTL")
        store.put(self.k("t/short"), b"soon gone", ttl=self.ttl_seconds)
        store.put_many({self.k("t/batch"): b"also"}, ttl=self.ttl_seconds)
        store.put(self.k("t/long"), b"stays", ttl=3600)
        store.put(self.k("t/none"), b"forever")
        assert store.get(self.k("t/short")) == b"soon gone"
        time.sleep(self.ttl_seconds + 1.0)
        assert store.get(self.k("t/short")) is None
        assert store.exists(self.k("t/short")) is False
        assert store.get_many([self.k("t/short"), self.k("t/batch"), self.k("t/long")]) == {
            self.k("t/long"): b"stays"}
        assert store.get(self.k("t/none")) == b"forever"
        store.put(self.k("t/short"), b"back", ttl=None)  # a put without ttl clears the expiry
        time.sleep(0.1)
        assert store.get(self.k("t/short")) == b"back"

    # -- concurrency ---------------------------------------------------------------------------
    def test_threads_share_a_store(self, store: KeyValueStore) -> None:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    key = self.k(f"th/{n}/{i}")
                    store.put(key, f"{n}-{i}".encode())
                    assert store.get(key) == f"{n}-{i}".encode()
                batch = {self.k(f"th/{n}/b{i}"): b"b" for i in range(10)}
                store.put_many(batch)
                assert store.get_many(list(batch)) == batch
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert len(list(store.keys(self.k("th/")))) == 6 * 35

    # -- failures ------------------------------------------------------------------------------
    def test_unreachable_is_kvunavailable(self) -> None:
        try:
            dead = self.make_unreachable_store()
        except KVUnavailable as exc:  # backends that connect when opened fail right here: also fine
            assert exc.retryable is True
            assert "s3cret" not in str(exc), "the password must be redacted from errors"
            return
        if dead is None:
            pytest.skip("no make_unreachable_store() for this backend")
        try:
            for call in (lambda: dead.get("1/x"), lambda: dead.put("1/x", b"v"),
                         lambda: dead.get_many(["1/x", "1/y"])):
                with pytest.raises(KVUnavailable) as info:
                    call()
                assert info.value.retryable is True
                assert "s3cret" not in str(info.value), "the password must be redacted from errors"
        finally:
            dead.close()

    def test_protocol_shape(self, store: KeyValueStore) -> None:
        assert isinstance(store, KeyValueStore)
        assert isinstance(store.url, str) and store.url
