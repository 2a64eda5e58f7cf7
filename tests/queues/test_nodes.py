"""Broker URLs parsed once: names, canonical URLs (what RabbitMQ's own URI parser reads in
federation upstreams and shovels), redaction. Pure logic, no servers."""

from __future__ import annotations

import pytest

from eventpipe.queues.nodes import (
    NodeURLError,
    canonical_url,
    node_name,
    normalize_node_name,
    parse_node,
    redact_url,
)


@pytest.mark.parametrize(
    ("url", "canonical", "name", "vhost"),
    [
        # the trailing slash: pika reads vhost "/", RabbitMQ would read "" -> spelled out as %2F
        ("amqp://guest:guest@127.0.0.1:5781/", "amqp://guest:guest@127.0.0.1:5781/%2F", "127.0.0.1:5781", "/"),
        ("amqp://guest:guest@127.0.0.1:5781", "amqp://guest:guest@127.0.0.1:5781/%2F", "127.0.0.1:5781", "/"),
        ("amqp://guest:guest@127.0.0.1:5781/%2F", "amqp://guest:guest@127.0.0.1:5781/%2F", "127.0.0.1:5781", "/"),
        # amqps without a port is 5671 everywhere (publishers and ops used to disagree)
        ("amqps://u:p@rabbit.example", "amqps://u:p@rabbit.example:5671/%2F", "rabbit.example:5671", "/"),
        ("amqp://h", "amqp://h:5672/%2F", "h:5672", "/"),
        ("amqp://u:p%40ss@h:1/prod?heartbeat=5", "amqp://u:p%40ss@h:1/prod?heartbeat=5", "h:1", "prod"),
        ("amqp://h/a%2Fb", "amqp://h:5672/a%2Fb", "h:5672", "a/b"),
        ("amqp://[::1]:5672/", "amqp://[::1]:5672/%2F", "[::1]:5672", "/"),
    ],
)
def test_canonical_form(url: str, canonical: str, name: str, vhost: str) -> None:
    node = parse_node(url)
    assert node.url == canonical == canonical_url(url)
    assert node.name == name == node_name(url)
    assert node.vhost == vhost
    assert parse_node(canonical) == node  # canonical is a fixed point
    assert node.tls is url.startswith("amqps")


def test_credentials_survive_and_never_show() -> None:
    node = parse_node("amqp://user:s%3Acret%2F@h:5672/")
    assert (node.username, node.password) == ("user", "s:cret/")
    assert "cret" not in repr(node) and "cret" not in node.redacted
    assert parse_node(node.url).password == "s:cret/"


@pytest.mark.parametrize("bad", ["redis://h:6379", "amqp://", "amqp://h:notaport/", "h:5672"])
def test_bad_urls_say_what_to_write(bad: str) -> None:
    with pytest.raises(NodeURLError, match="amqp://"):
        parse_node(bad)


def test_node_names_given_by_operators() -> None:
    assert normalize_node_name("127.0.0.1:5673") == "127.0.0.1:5673"
    assert normalize_node_name("rabbit1") == "rabbit1:5672"
    assert normalize_node_name("amqps://u:p@rabbit1/") == "rabbit1:5671"


def test_redact_url_in_urls_and_text() -> None:
    assert redact_url("http://user:secret@127.0.0.1:15672/api") == "http://127.0.0.1:15672/api"
    assert redact_url("redis+cluster://:pw@a:1,b:2") == "redis+cluster://a:1,b:2"
    text = "{badmatch, \"amqp://guest:guest@127.0.0.1:1/%2F\"} and sqlite:///x"
    assert redact_url(text) == "{badmatch, \"amqp://127.0.0.1:1/%2F\"} and sqlite:///x"
