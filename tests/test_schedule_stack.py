"""The scheduler's search on a graph deeper than the interpreter's recursion limit: it must not
need recursion, nor change the (process-wide) limit."""

from __future__ import annotations

import sys

import numpy as np

from hwbench.graph import Graph, Op, Tensor
from hwbench.memory import order_peak, schedule

CHAIN = 1500  # ops in the line: more than CPython's default recursion limit (1000)


def trap_then_chain(length: int) -> Graph:
    """Inputs x, y (16 B each). op 0: CONV y→a (16), op 1: CONCATENATION (y, x)→b (24), op 2:
    CONCATENATION (a, b)→c0 (8), then `length` CONVs c0→c1→... (8 B each) in a line.

    The file order (and the greedy one: op 0 adds less) peaks at x+y+a+b = 72 B; running op 1 first
    frees x early: x+y+b = 56, then y+b+a = 56, a+b+c0 = 48, and 16 along the chain. Since the
    heuristic bound (72) is above the optimum, the search has to walk the whole chain, one state
    inside the other, to prove it."""
    tensors = [Tensor("x", (16,), "int8"), Tensor("y", (16,), "int8"),
               Tensor("w", (4,), "int8", data=np.zeros(4, np.int8)),
               Tensor("a", (16,), "int8"), Tensor("b", (24,), "int8"), Tensor("c0", (8,), "int8")]
    ops = [Op("CONV_2D", (1, 2), (3,)), Op("CONCATENATION", (1, 0), (4,)), Op("CONCATENATION", (3, 4), (5,))]
    for k in range(1, length + 1):
        tensors.append(Tensor(f"c{k}", (8,), "int8"))
        ops.append(Op("CONV_2D", (len(tensors) - 2, 2), (len(tensors) - 1,)))
    return Graph(tensors, ops, (0, 1), (len(tensors) - 1,), name="trap_then_chain")


def test_chain_deeper_than_the_recursion_limit_leaves_the_limit_alone(monkeypatch):
    g = trap_then_chain(CHAIN)
    limit = sys.getrecursionlimit()
    changes = []  # raising the limit, even if restored after, affects every other thread meanwhile
    monkeypatch.setattr(sys, "setrecursionlimit", changes.append)
    s = schedule(g)
    assert changes == [] and sys.getrecursionlimit() == limit
    # A chain state has one ready op, so the states along the chain nest: a recursive search would
    # have been at least `s.states - 3` calls deep, past the limit.
    assert s.states - 3 > limit
    assert s.exact and s.peak_bytes == 56
    assert s.order == (1, 0) + tuple(range(2, CHAIN + 3))
    assert order_peak(g, s.order) == 56
    assert order_peak(g, range(len(g.ops))) == 72
