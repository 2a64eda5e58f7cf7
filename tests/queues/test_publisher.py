"""Node choice of the publisher (pure logic: nodes are stand-ins, no broker involved)."""

from eventpipe.queues.publisher import Publisher


class FakeNode:
    def __init__(self, name: str, available: bool = True) -> None:
        self.name, self.url, self.available = name, f"amqp://{name}", available


def publisher(**kw) -> Publisher:
    p = Publisher.__new__(Publisher)  # skip connecting: only the ordering logic is under test
    p.urls, p.window, p.deadline_s = [], 1000, 1.0
    p.excluded = kw.get("excluded", set)
    p.strategy = kw.get("strategy", "round_robin")
    p.depth_of = kw.get("depth_of")
    p.preferred = None
    p.nodes = [FakeNode("a:1"), FakeNode("b:1"), FakeNode("c:1", available=kw.get("c_up", True))]
    import itertools

    p._rr, p._depths = itertools.count(), {}
    return p


def test_round_robin_spreads_and_puts_dead_nodes_last():
    p = publisher(c_up=False)
    firsts = [p._order("q")[0].name for _ in range(6)]
    assert set(firsts) == {"a:1", "b:1"}
    assert p._order("q")[-1].name == "c:1"


def test_pinned_node_first_and_drained_nodes_skipped():
    p = publisher(excluded=lambda: {"a:1"})
    p.pin("a:1")
    assert [n.name for n in p._order("q")] == ["b:1", "c:1"]  # drained beats pinned
    p = publisher()
    p.pin("c:1")
    assert p._order("q")[0].name == "c:1"


def test_least_backlog_prefers_the_emptiest_node():
    depths = {"amqp://a:1": 500, "amqp://b:1": 20, "amqp://c:1": 900}
    p = publisher(strategy="least_backlog", depth_of=lambda url, q: depths[url])
    assert [n.name for n in p._order("q")] == ["b:1", "a:1", "c:1"]


def test_pinning_an_unknown_node_says_which_exist():
    p = publisher()
    try:
        p.pin("zz:9")
    except ValueError as exc:
        assert "a:1" in str(exc) and "EVENTPIPE_BROKER_URLS" in str(exc)
    else:
        raise AssertionError("pinning an unknown node must fail")
