"""Queue names: work, dead-letter and delay queues classified back to their logical queue."""

from __future__ import annotations


def test_classify_queue_names() -> None:
    from eventpipe.queues.topology import Topology

    t = Topology("p.")
    classify = Topology.classify
    assert classify(t, "p.events.save").kind == "work"
    assert classify(t, "p.events.save.dlq") == classify(t, t.dead_letter("events.save"))
    assert classify(t, "p.events.save.dlq").logical == "events.save"
    d = classify(t, t.delay("events", 5000))
    assert (d.kind, d.logical, d.delay_ms) == ("delay", "events", 5000)
    assert classify(t, "other.events").kind == "other"
