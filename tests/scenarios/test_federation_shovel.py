"""Dynamic shovels move a backlog explicitly between two test-owned nodes."""

from __future__ import annotations

import json
import time

import pytest

from eventpipe.queues import shovel
from eventpipe.queues.declare import declare_queues
from eventpipe.queues.topology import Topology
from tests.support.mesh import depth, publish_fast

pytestmark = pytest.mark.slow


def test_move_5000_messages_from_a_to_b(rabbit_nodes) -> None:  # noqa: ANN001
    a, b = rabbit_nodes.nodes[0], rabbit_nodes.nodes[1]
    topo = Topology("shovel.")
    for node in (a, b):
        declare_queues(node.amqp_url, topo, ["work"])
    queue = topo.queue("work")
    publish_fast(a.amqp_url, queue, 5_000)

    progress: list[shovel.ShovelProgress] = []
    t0 = time.monotonic()
    handle = shovel.move_backlog(a, b, queue, 5_000)
    assert handle.name.startswith("eventpipe-move-")
    assert "guest" not in repr(handle) and "guest" not in json.dumps(handle.to_dict())
    result = shovel.wait_done(handle, timeout_s=120, poll_s=0.2, on_progress=progress.append,
                              src_management_url=a.management_url, dst_management_url=b.management_url)
    elapsed = time.monotonic() - t0
    print(f"\nshovel moved 5000 messages in {elapsed:.2f}s")
    assert result.done
    assert progress and progress[-1].state == "done"
    assert depth(a.amqp_url, queue) == 0
    assert depth(b.amqp_url, queue) == 5_000
    assert shovel.shovel_state(handle) is None  # it deleted itself


def test_move_refuses_a_missing_destination_queue(rabbit_nodes) -> None:  # noqa: ANN001
    a, b = rabbit_nodes.nodes[0], rabbit_nodes.nodes[1]
    topo = Topology("shovel2.")
    declare_queues(a.amqp_url, topo, ["work"])
    with pytest.raises(shovel.ShovelError, match="federation setup"):
        shovel.move_backlog(a, b, topo.queue("work"), 10)


def test_wait_done_times_out_when_fewer_messages_exist_and_cancel_removes(rabbit_nodes) -> None:  # noqa: ANN001
    a, b = rabbit_nodes.nodes[0], rabbit_nodes.nodes[2]
    topo = Topology("shovel3.")
    for node in (a, b):
        declare_queues(node.amqp_url, topo, ["work"])
    queue = topo.queue("work")
    publish_fast(a.amqp_url, queue, 10)
    handle = shovel.move_backlog(a, b, queue, 100)
    with pytest.raises(shovel.ShovelError, match="still"):
        shovel.wait_done(handle, timeout_s=2, poll_s=0.2)
    assert shovel.cancel(handle)
    assert shovel.shovel_state(handle) is None
    assert depth(b.amqp_url, queue) == 10
