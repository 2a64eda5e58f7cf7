"""The registry: built-in schemes, a third-party backend through the entry-point group, errors."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import eventpipe.kvstore as kvstore
from eventpipe.kvstore import BUILTIN_BACKENDS, CodecStore, KVBadKey, backends, open_raw_store, open_store
from eventpipe.kvstore.base import BatchFallbackMixin, check_key
from eventpipe.cli.kv import kv
from eventpipe.testing.conformance import KeyValueStoreConformance


class DictStore(BatchFallbackMixin):
    """What a plugin author writes: a class built from a URL, storing raw bytes."""

    shared: dict[str, dict[str, bytes]] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        self.data = DictStore.shared.setdefault(url, {})

    def get(self, key: str) -> bytes | None:
        return self.data.get(check_key(key))

    def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.data[check_key(key)] = bytes(value)

    def delete(self, key: str) -> None:
        self.data.pop(check_key(key), None)

    def exists(self, key: str) -> bool:
        return check_key(key) in self.data

    def keys(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in list(self.data) if k.startswith(prefix)))

    def close(self) -> None:
        pass


@pytest.fixture
def dict_plugin(monkeypatch: pytest.MonkeyPatch) -> str:
    """Simulate an installed distribution declaring ``[project.entry-points."eventpipe.kvstores"]``."""
    module = types.ModuleType("acme_kv")
    module.DictStore = DictStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme_kv", module)
    ep = importlib.metadata.EntryPoint(name="acme", value="acme_kv:DictStore", group=kvstore.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def fake(**params: Any) -> Any:
        if params.get("group") == kvstore.ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([ep])
        return real(**params)

    monkeypatch.setattr(kvstore, "entry_points", fake)
    return "acme"


def test_builtin_schemes_registered() -> None:
    for scheme in ["file", "memory", "sqlite", "postgresql+psycopg", "redis", "redis+cluster", "s3"]:
        assert scheme in BUILTIN_BACKENDS
        assert backends()[scheme]["source"] == "builtin"


def test_entry_point_plugin_opens_by_url(dict_plugin: str) -> None:
    assert backends()["acme"]["target"] == "acme_kv:DictStore"
    store = open_store("acme://bucket-1")
    assert isinstance(store, CodecStore) and isinstance(store.inner, DictStore)
    store.put("1/abc", b"hello " * 100)
    assert store.get("1/abc") == b"hello " * 100
    assert open_raw_store("acme://bucket-1").get("1/abc") != b"hello " * 100  # stored framed
    with pytest.raises(KVBadKey):
        store.put("../escape", b"x")


def test_cli_lists_plugin(dict_plugin: str) -> None:
    out = CliRunner().invoke(kv, ["backends", "--json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert listed["acme"]["target"] == "acme_kv:DictStore"
    assert listed["s3"]["source"] == "builtin"
    table = CliRunner().invoke(kv, ["backends"])
    assert table.exit_code == 0 and "acme" in table.output and "redis+cluster" in table.output


def test_unknown_scheme_names_known_ones() -> None:
    with pytest.raises(ValueError, match="known: .*sqlite") as info:
        open_store("nosuch://user:s3cret@host/x")
    assert "s3cret" not in str(info.value)


class TestPluginConformance(KeyValueStoreConformance):
    """The plugin itself runs the shipped suite, as a plugin author would in their own repo."""

    supports_ttl = False

    def make_store(self) -> DictStore:
        return DictStore(f"acme://conformance-{id(self)}")
