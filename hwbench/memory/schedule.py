"""The execution order with the least peak memory, found exactly (and proved) or, past a budget,
approximated.

The exact search is the dynamic programme over "downsets" (sets of executed ops closed under
predecessors) that μNAS and tflite-tools use: the best peak from a set S onwards depends on S
alone, f(S) = min over ready ops v of max(memory while v runs, f(S ∪ {v})). It is made fast by
- memoisation over S (a bitmask), storing exact values or proved lower bounds;
- branch and bound: an upper bound from heuristic orders, tightened by each better order found,
  prunes every branch that cannot beat it; a lower bound per state (live bytes now, and the
  smallest working set of every op still to run) prunes before expanding;
- a dominance rule: a ready op that frees at least what it allocates, and whose own step is within
  the state's lower bound, can always go first (moving it earlier never raises any later step),
  so it is taken without branching (reshapes, in-place activations, poolings that shrink data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from hwbench.graph import Graph
from hwbench.memory.buffers import Problem

# About 13 µs a state here: 50,000 states keep any graph within the 1 s budget (then exact=False).
DEFAULT_MAX_STATES = 50_000


@dataclass(frozen=True)
class Schedule:
    order: tuple[int, ...]  # op indices in execution order
    peak_bytes: int
    exact: bool  # True: no order has a lower peak (proved); False: heuristic, budget exceeded
    inplace: bool  # whether the in-place rule (`reuse_rule`) was applied
    states: int  # search states expanded
    seconds: float


class _BudgetExceeded(Exception):
    pass


def schedule(graph: Graph, inplace: bool = True, max_states: int = DEFAULT_MAX_STATES) -> Schedule:
    """The minimum-peak execution order of `graph`.

    `max_states` bounds the exact search; a graph that needs more (very wide, many parallel
    branches) gets the best heuristic order found, with `exact=False`.
    Raises HwbenchError for a graph with a cycle or a dangling tensor.
    """
    start = time.perf_counter()
    problem = Problem(graph, inplace)
    best_order, best_peak = _best_heuristic(problem)
    search = _Search(problem, max_states)
    try:
        ready = sum(1 << v for v in range(problem.n) if not problem.pred[v])
        value, exact = search.solve(0, ready, problem.initial_live, best_peak)
        if exact and value < best_peak:
            best_order, best_peak = search.order(), value
        proved = True
    except _BudgetExceeded:
        beam_order, beam_peak = _beam(problem, width=32)
        if beam_peak < best_peak:
            best_order, best_peak = beam_order, beam_peak
        proved = False
    return Schedule(order=tuple(best_order), peak_bytes=best_peak, exact=proved, inplace=inplace,
                    states=search.states, seconds=time.perf_counter() - start)


def peak_of(problem: Problem, order: Sequence[int]) -> int:
    """The peak of `order` by stepping the problem (the same arithmetic the search uses)."""
    done, live, peak = 0, problem.initial_live, 0
    for v in order:
        added, freed, _ = problem.step(done, v)
        peak = max(peak, live + added)
        live += added - freed
        done |= 1 << v
    return peak


class _Search:
    def __init__(self, problem: Problem, max_states: int):
        self.p = problem
        self.max_states = max_states
        self.states = 0
        self.full = (1 << problem.n) - 1
        self.memo: dict[int, tuple[int, bool, int]] = {}  # done -> (value, exact, best op)
        # Ops by their smallest working set, largest first, for the remaining-ops lower bound.
        self.by_working_set = sorted(range(problem.n), key=lambda v: -problem.min_working_set[v])

    def lower_bound(self, done: int, live: int) -> int:
        for v in self.by_working_set:
            if not done >> v & 1:
                return max(live, self.p.min_working_set[v])
        return 0

    def ready_after(self, done: int, ready: int, v: int) -> int:
        """The ready ops after running v: the others still ready, and v's successors now unblocked."""
        ready &= ~(1 << v)
        for u in self.p.succ[v]:
            if not self.p.pred[u] & ~done:
                ready |= 1 << u
        return ready

    def solve(self, done: int, ready: int, live: int, bound: int) -> tuple[int, bool]:
        """(f(done), True) if f(done) < bound, else (a lower bound on f(done) that is >= bound, False).

        Depth first, with an explicit stack of the states being expanded instead of recursion (a
        chain of n ops is n states deep, and the interpreter's recursion limit is process-wide).
        """
        stack: list[_Frame] = []
        outcome = self.enter(done, ready, live, bound)
        while True:
            if isinstance(outcome, _Frame):  # a state to expand: it goes on top
                stack.append(outcome)
            elif stack:  # a state's (value, exact): the state below it asked for it
                stack[-1].take(*outcome)
            else:
                return outcome
            frame = stack[-1]
            step = frame.next_step()
            if step is None:  # every step from the top state is tried: it is solved
                stack.pop()
                entry = self.memo[frame.done] = frame.result()
                outcome = entry[:2]
            else:
                v, added, freed = step
                nxt = frame.done | 1 << v
                outcome = self.enter(nxt, self.ready_after(nxt, frame.ready, v), frame.live + added - freed,
                                     frame.best)

    def enter(self, done: int, ready: int, live: int, bound: int) -> tuple[int, bool] | _Frame:
        """The state's outcome for `solve` if it is known without expanding the state (all done,
        memoised, or bounded out), else the frame that expands it (one more state of the budget)."""
        if done == self.full:
            return 0, True
        memo = self.memo.get(done)
        if memo is not None:
            value, exact, _ = memo
            if exact or value >= bound:
                return value, exact
        lb = self.lower_bound(done, live)
        if memo is not None:
            lb = max(lb, memo[0])
        if lb >= bound:
            self.memo[done] = (lb, False, -1)
            return lb, False
        self.states += 1
        if self.states > self.max_states:
            raise _BudgetExceeded
        p = self.p
        steps = []
        m = ready
        while m:
            low = m & -m
            v = low.bit_length() - 1
            m ^= low
            added, freed, _ = p.step(done, v)
            steps.append((v, added, freed))
        # Whatever runs next is one of the ready ops: the cheapest of them bounds f(done) from below.
        lb = max(lb, live + min(added for _, added, _ in steps))
        if lb >= bound:
            self.memo[done] = (lb, False, -1)
            return lb, False
        for v, added, freed in steps:  # dominance: take a non-growing op within the lower bound at once
            if added - freed <= 0 and live + added <= lb:
                return _Frame(done, ready, live, bound, lb, [(v, added, freed)], dominant=True)
        steps.sort(key=lambda s: (s[1], s[1] - s[2]))  # try the cheapest steps first: better bounds sooner
        return _Frame(done, ready, live, bound, lb, steps, dominant=False)

    def order(self) -> list[int]:
        done, order = 0, []
        while done != self.full:
            _, exact, v = self.memo[done]
            assert exact and v >= 0
            order.append(v)
            done |= 1 << v
        return order


@dataclass(slots=True, eq=False)
class _Frame:
    """A state of the search being expanded: the steps from it, (op, added, freed) in the order
    they are tried, and what the steps tried so far gave."""
    done: int
    ready: int
    live: int
    bound: int
    lb: int
    steps: list[tuple[int, int, int]]
    dominant: bool  # the single step was chosen by the dominance rule: its outcome is the state's
    best: int = field(init=False)  # the bound for the next step: `bound`, then the best exact value found
    best_op: int = -1
    failed_lb: int | None = None  # the least lower bound among the steps that did not beat `best`
    tried: int = 0  # steps handed out by `next_step`
    taken: tuple[int, bool, int] | None = None  # the dominant step's (value, exact, op)

    def __post_init__(self) -> None:
        self.best = self.bound

    def next_step(self) -> tuple[int, int, int] | None:
        """The next step that may beat `best`, or None when none is left."""
        while self.tried < len(self.steps):
            step = self.steps[self.tried]
            self.tried += 1
            running = self.live + step[1]
            if running < self.best:
                return step
            self.failed_lb = running if self.failed_lb is None else min(self.failed_lb, running)
        return None

    def take(self, value: int, exact: bool) -> None:
        """The outcome `solve` gave for the state after the step handed out last."""
        v, added, _ = self.steps[self.tried - 1]
        value = max(value, self.live + added)
        if self.dominant:
            self.taken = (value, exact, v)
        elif exact and value < self.best:
            self.best, self.best_op = value, v
            if self.best <= self.lb:
                self.tried = len(self.steps)  # the lower bound is reached: no other step can beat it
        else:
            self.failed_lb = value if self.failed_lb is None else min(self.failed_lb, value)

    def result(self) -> tuple[int, bool, int]:
        """The state's memo entry (value, exact, best op) once no step is left."""
        if self.taken is not None:
            return self.taken
        if self.best_op >= 0:
            return self.best, True, self.best_op
        failed = self.failed_lb if self.failed_lb is not None else self.bound
        return max(failed, self.bound, self.lb), False, -1


def _best_heuristic(problem: Problem) -> tuple[list[int], int]:
    candidates = [list(problem.topological_order), _greedy(problem)]
    scored = [(peak_of(problem, order), order) for order in candidates]
    peak, order = min(scored, key=lambda s: s[0])
    return order, peak


def _greedy(problem: Problem) -> list[int]:
    """At each step, the ready op that needs the least memory while it runs, then frees the most."""
    done, live, order = 0, problem.initial_live, []
    for _ in range(problem.n):
        ready = [v for v in range(problem.n) if not done >> v & 1 and not problem.pred[v] & ~done]
        v, added, freed = min(((v, *problem.step(done, v)[:2]) for v in ready), key=lambda s: (s[1], s[1] - s[2], s[0]))
        order.append(v)
        live += added - freed
        done |= 1 << v
    return order


def _beam(problem: Problem, width: int) -> tuple[list[int], int]:
    """Beam search over executed-op sets, keeping the `width` partial orders with the lowest
    (peak so far, live bytes)."""
    beam = {0: (0, problem.initial_live, [])}
    for _ in range(problem.n):
        nxt: dict[int, tuple[int, int, list[int]]] = {}
        for done, (peak, live, order) in beam.items():
            for v in range(problem.n):
                if done >> v & 1 or problem.pred[v] & ~done:
                    continue
                added, freed, _ = problem.step(done, v)
                key = done | 1 << v
                cand = (max(peak, live + added), live + added - freed, order + [v])
                if key not in nxt or cand[:2] < nxt[key][:2]:
                    nxt[key] = cand
        beam = dict(sorted(nxt.items(), key=lambda kv: kv[1][:2])[:width])
    peak, _, order = next(iter(beam.values()))
    return order, peak
