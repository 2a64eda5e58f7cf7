"""The rebalance planner: who gives, who receives, how much; pure logic, no broker."""

from __future__ import annotations

from typing import Any

from eventpipe.ops.plan import Load, plan


def total_moved(moves: list[Any], src: str | None = None, dst: str | None = None) -> int:
    return sum(m.count for m in moves if (src is None or m.src == src) and (dst is None or m.dst == dst))


def test_node_without_consumers_gives_everything_to_nodes_with_consumers() -> None:
    moves = plan([Load("q", "a", 3000, 0), Load("q", "b", 0, 1), Load("q", "c", 0, 1)])
    assert total_moved(moves, "a") == 3000
    assert total_moved(moves, dst="b") == 1500 and total_moved(moves, dst="c") == 1500


def test_stranded_backlog_moves_even_when_small_and_receivers_are_full() -> None:
    moves = plan([Load("q", "a", 10, 0), Load("q", "b", 5000, 2)], min_move=100)
    assert [(m.src, m.dst, m.count) for m in moves] == [("a", "b", 10)]


def test_surplus_goes_to_deficits_in_proportion_to_consumers() -> None:
    moves = plan([Load("q", "a", 9000, 2), Load("q", "b", 0, 2), Load("q", "c", 1000, 2)])
    # fair share 10000/6 per consumer: a keeps 3333, b gets 3333, c gets 2333
    assert total_moved(moves, "a", "b") == 3333
    assert total_moved(moves, "a", "c") == 2333
    assert all(m.src == "a" for m in moves)


def test_balanced_or_slightly_uneven_backlogs_are_left_alone() -> None:
    assert plan([Load("q", "a", 1000, 2), Load("q", "b", 900, 2)]) == []
    assert plan([Load("q", "a", 1900, 1), Load("q", "b", 1000, 1)], factor=2.0) == []


def test_small_moves_are_not_worth_a_shovel() -> None:
    assert plan([Load("q", "a", 150, 1), Load("q", "b", 0, 5)], min_move=200) == []


def test_no_consumers_anywhere_means_no_moves() -> None:
    assert plan([Load("q", "a", 5000, 0), Load("q", "b", 0, 0)]) == []


def test_drained_nodes_never_receive_and_always_give() -> None:
    loads = [Load("q", "a", 0, 4), Load("q", "b", 2000, 1), Load("q", "c", 0, 1)]
    moves = plan(loads, excluded={"a"})
    assert total_moved(moves, dst="a") == 0
    moves = plan([Load("q", "a", 500, 4), Load("q", "b", 0, 1)], excluded={"a"})
    assert total_moved(moves, "a", "b") == 500


def test_plans_are_per_queue_and_deterministic() -> None:
    loads = [Load("x", "a", 4000, 0), Load("x", "b", 0, 1), Load("y", "a", 0, 1), Load("y", "b", 4000, 0)]
    first = plan(loads)
    assert first == plan(list(reversed(loads)))
    assert {(m.queue, m.src, m.dst, m.count) for m in first} == {("x", "a", "b", 4000), ("y", "b", "a", 4000)}


def test_plan_never_moves_more_than_a_node_holds() -> None:
    import random

    rnd = random.Random(7)
    for _ in range(300):
        loads = [Load("q", f"n{i}", rnd.choice([0, 10, 500, 5000, 20000]), rnd.choice([0, 0, 1, 2, 8])) for i in range(4)]
        moves = plan(loads)
        for load in loads:
            assert total_moved(moves, src=load.node) <= load.ready
            if moves:
                assert load.consumers > 0 or total_moved(moves, dst=load.node) == 0
        assert all(m.src != m.dst and m.count > 0 for m in moves)
