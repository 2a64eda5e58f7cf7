"""No servers: URL derivation, names, the policy pattern and error translation."""

from __future__ import annotations

import re

import pytest

from eventpipe.config import load_settings
from eventpipe.queues import federation as fed
from eventpipe.queues.management import (
    ManagementClient,
    ManagementUnavailable,
    management_urls_for,
    redact_url,
)
from eventpipe.queues.topology import Topology
from eventpipe.testing.ports import free_port


def test_default_management_urls_follow_broker_order_and_credentials() -> None:
    s = load_settings(broker_urls=["amqp://u:p%40ss@h1:5672/%2F", "amqp://h2:5673"])
    assert management_urls_for(s) == ["http://u:p%40ss@h1:15672", "http://h2:15672"]


def test_explicit_management_urls_inherit_credentials_and_must_match_length() -> None:
    s = load_settings(broker_urls=["amqp://u:p@h1", "amqp://u:p@h2"],
                      management_urls=["http://m1:9999", "https://x:y@m2:15671"])
    assert management_urls_for(s) == ["http://u:p@m1:9999", "https://x:y@m2:15671"]
    bad = load_settings(broker_urls=["amqp://h1", "amqp://h2"], management_urls=["http://m1:15672"])
    with pytest.raises(ValueError, match="one management URL per broker node"):
        management_urls_for(bad)


def test_redact_url_drops_credentials() -> None:
    assert redact_url("http://user:secret@127.0.0.1:15672/api") == "http://127.0.0.1:15672/api"
    assert "secret" not in repr(ManagementClient("http://user:secret@127.0.0.1:1"))


@pytest.mark.parametrize(
    ("name", "federated"),
    [
        ("eventpipe.events", True),
        ("eventpipe.events.save", True),
        ("eventpipe.dlq.audit", True),  # only the suffix marks a dead-letter queue
        ("eventpipe.events.dlq", False),
        ("eventpipe.events.delay.5000", False),
        ("eventpipe.events.save.delay.100", False),
        ("other.events", False),
        ("eventpipeXevents", False),  # the dot in the prefix is literal
    ],
)
def test_policy_pattern_selects_work_queues_only(name: str, federated: bool) -> None:
    assert fed.is_federated(Topology("eventpipe."), name) is federated
    assert (re.search(fed.federation_pattern("eventpipe."), name) is not None) is federated


def test_names_are_recognisable_and_distinct_per_prefix() -> None:
    assert fed.upstream_name("eventpipe.", "amqp://g:g@127.0.0.1:5673/%2F") == "eventpipe-eventpipe-127.0.0.1:5673"
    assert fed.policy_name("eventpipe.") == "eventpipe-eventpipe-federation"
    assert fed.upstream_set_name("a.") != fed.upstream_set_name("b.")


def test_refused_management_api_says_what_to_do() -> None:
    port = free_port()  # nobody listens there
    with ManagementClient(f"http://guest:guest@127.0.0.1:{port}") as mc, pytest.raises(ManagementUnavailable) as err:
        mc.overview()
    assert "enable rabbitmq_management" in str(err.value) and "EVENTPIPE_MANAGEMENT_URLS" in str(err.value)
    assert "guest" not in str(err.value)
