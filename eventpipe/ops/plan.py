"""The rebalance plan: a pure function from per-node backlog and consumers to shovel moves.

Why proportional to consumers: federation already moves work towards idle consumers, but only
one link-prefetch at a time and only once a node's own queue is empty; a node whose backlog per
consumer is far above the rest stays behind for a long time. The plan gives each node a share of
the queue's backlog proportional to its consumers and moves only clear surpluses:

* a node with a backlog and **no consumers** always gives all of it away (nothing will ever
  take it there), whenever some other node has consumers;
* a node whose backlog per consumer exceeds ``factor`` × the queue's mean gives its surplus over
  its fair share;
* receivers are nodes with consumers whose backlog is below their fair share, filled in order of
  their deficit; drained (excluded) nodes never receive;
* moves below ``min_move`` messages are not worth a shovel and are dropped (except the
  no-consumer case, where any backlog is stranded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Load:
    queue: str  # logical name
    node: str  # HOST:PORT
    ready: int
    consumers: int


@dataclass(frozen=True)
class Move:
    queue: str
    src: str
    dst: str
    count: int
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(
    loads: Iterable[Load],
    *,
    factor: float = 2.0,
    min_move: int = 100,
    excluded: frozenset[str] | set[str] = frozenset(),
) -> list[Move]:
    """Moves that bring every queue's backlog close to proportional-to-consumers. Deterministic."""
    by_queue: dict[str, list[Load]] = {}
    for load in loads:
        by_queue.setdefault(load.queue, []).append(load)
    moves: list[Move] = []
    for queue in sorted(by_queue):
        moves += _plan_queue(queue, sorted(by_queue[queue], key=lambda x: x.node), factor, min_move, set(excluded))
    return moves


def _plan_queue(queue: str, loads: list[Load], factor: float, min_move: int, excluded: set[str]) -> list[Move]:
    receivers_pool = [x for x in loads if x.consumers > 0 and x.node not in excluded]
    capacity = sum(x.consumers for x in receivers_pool)
    if capacity == 0:
        return []  # nobody anywhere can take work: moving it changes nothing
    total = sum(x.ready for x in loads)
    mean = total / capacity
    fair = {x.node: total * x.consumers / capacity for x in receivers_pool}

    gives: list[tuple[str, int, str]] = []
    for x in loads:
        if x.ready <= 0:
            continue
        if x.consumers == 0 or x.node in excluded:
            gives.append((x.node, x.ready, "no consumers" if x.consumers == 0 else "node drained"))
            continue
        per = x.ready / x.consumers
        if per > factor * mean:
            surplus = int(x.ready - fair[x.node])
            if surplus >= min_move:
                gives.append((x.node, surplus, f"{per:.0f}/consumer vs mean {mean:.0f}"))
    if not gives:
        return []
    deficits = {
        x.node: fair[x.node] - x.ready for x in receivers_pool if fair[x.node] - x.ready > 0 and x.node not in {g[0] for g in gives}
    }
    if not deficits and not any(g[2] in ("no consumers", "node drained") for g in gives):
        return []
    moves: list[Move] = []
    # largest donor first; each fills the receivers' deficits in proportion to them
    for src, amount, why in sorted(gives, key=lambda g: (-g[1], g[0])):
        stranded = why in ("no consumers", "node drained")
        fill = min(amount, int(sum(deficits.values())))
        for dst, n in _split(fill, deficits):
            if n > 0 and (stranded or n >= min_move):
                moves.append(Move(queue, src, dst, n, why))
                deficits[dst] -= n
                amount -= n
        if stranded and amount > 0:
            # every receiver reached its share: stranded work still goes where consumers are
            weights = {x.node: float(x.consumers) for x in receivers_pool if x.node != src}
            for dst, n in _split(amount, weights):
                if n > 0:
                    moves.append(Move(queue, src, dst, n, why))
        deficits = {k: v for k, v in deficits.items() if v >= 1}
    return _merge(moves)


def _split(amount: int, weights: dict[str, float]) -> list[tuple[str, int]]:
    """``amount`` split by weight with largest remainders, so the parts add up exactly."""
    total = sum(max(0.0, w) for w in weights.values())
    if total <= 0 or amount <= 0:
        return []
    names = sorted(weights, key=lambda k: (-weights[k], k))
    raw = {k: amount * max(0.0, weights[k]) / total for k in names}
    parts = {k: int(raw[k]) for k in names}
    rest = amount - sum(parts.values())
    for k in sorted(names, key=lambda k: (-(raw[k] - parts[k]), k))[:rest]:
        parts[k] += 1
    return [(k, parts[k]) for k in names]


def _merge(moves: list[Move]) -> list[Move]:
    merged: dict[tuple[str, str, str], Move] = {}
    for m in moves:
        key = (m.queue, m.src, m.dst)
        prev = merged.get(key)
        merged[key] = m if prev is None else Move(m.queue, m.src, m.dst, prev.count + m.count, prev.why)
    return list(merged.values())
