"""Activation buffers: which tensors share memory (the in-place rule), and how long each lives.

Peak memory is the largest total of activation buffers alive at once over the
execution order, the model's inputs and outputs counted, constants (weights, in flash) not.
Step `t` of an order runs op `order[t]`; during it, a buffer is alive when it was made at or
before `t` (graph inputs exist from step 0) and is still read at or after `t` (graph outputs
stay alive to the end). An op's inputs and outputs are therefore all alive while it runs.

The in-place rule, `reuse_rule`, is the contract between this planner and the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from hwbench.errors import HwbenchError
from hwbench.graph import NO_TENSOR, Graph, Op

# Ops whose output is the input's bytes reinterpreted: no copy, one buffer for both.
ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE"})
# Elementwise binary ops: output[i] depends on input[i] only (when shapes match, no broadcast).
ELEMENTWISE_BINARY_OPS = frozenset({"ADD", "SUB", "MUL"})
# Elementwise unary ops: each output element is computed from the same input element alone.
ELEMENTWISE_UNARY_OPS = frozenset({"RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH", "QUANTIZE"})


@dataclass(frozen=True)
class Reuse:
    """How an op's single output may share an input's memory.

    kind "alias": the output *is* input `inputs[0]` (same bytes, no copy), always.
    kind "overwrite": the output may be written over the first of `inputs` (operand positions, in
    this order of preference) whose buffer dies at this op, i.e. this op is its last reader and it
    is not a graph output; if none dies here, the output gets a buffer of its own.
    """

    kind: str
    inputs: tuple[int, ...]


def reuse_rule(graph: Graph, op: Op) -> Reuse | None:
    """The in-place rule the planner assumes and the runtime must follow (None: no sharing).

    - RESHAPE, SQUEEZE: the output aliases input 0 (only the shape changes).
    - ADD, SUB, MUL: the output may overwrite input 0 or input 1 (tried in that order) if that
      input is an activation with exactly the output's size and dtype (no broadcasting), and it
      dies at this op. The kernel reads element i of both inputs before writing element i.
    - RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, QUANTIZE (int8 → int8): the output may
      overwrite input 0 under the same conditions.
    Every other op (convolutions, pooling, softmax, concatenation, ...) writes a fresh buffer.
    A graph input may be overwritten once no op reads it any more; a graph output never is.
    Room is left here for in-place depthwise convolution (MCUNet) as another "overwrite" op.
    """
    if len(op.outputs) != 1:
        return None
    out = graph.tensors[op.outputs[0]]

    def same_buffer_shape(position: int) -> bool:
        if position >= len(op.inputs) or op.inputs[position] == NO_TENSOR:
            return False
        t = graph.tensors[op.inputs[position]]
        return not t.is_constant and t.nbytes == out.nbytes and t.dtype == out.dtype

    if op.type in ALIAS_OPS:
        return Reuse("alias", (0,)) if same_buffer_shape(0) else None
    if op.type in ELEMENTWISE_BINARY_OPS:
        positions = tuple(p for p in (0, 1) if same_buffer_shape(p))
        return Reuse("overwrite", positions) if positions else None
    if op.type in ELEMENTWISE_UNARY_OPS:
        return Reuse("overwrite", (0,)) if same_buffer_shape(0) else None
    return None


def is_activation(graph: Graph, index: int) -> bool:
    return index != NO_TENSOR and not graph.tensors[index].is_constant


def check_graph(graph: Graph) -> tuple[int, ...]:
    """Check the graph can be scheduled; return a topological order (the file order if valid).

    Raises HwbenchError for a tensor produced twice, a graph input that an op overwrites, a
    dangling tensor (read but never produced, and not a graph input or constant) and a cycle.
    """
    name = graph.name or "the graph"
    producer: dict[int, int] = {}
    for v, op in enumerate(graph.ops):
        for t in op.outputs:
            if t in producer:
                raise HwbenchError(f"{name}: tensor {t} '{graph.tensors[t].name}' is written by both op {producer[t]} "
                                   f"and op {v} {op.type}; each tensor must have one producer")
            if t in graph.inputs:
                raise HwbenchError(f"{name}: graph input tensor {t} '{graph.tensors[t].name}' is also written by "
                                   f"op {v} {op.type}")
            producer[t] = v
    inputs = set(graph.inputs)
    for v, op in enumerate(graph.ops):
        for t in op.inputs:
            if is_activation(graph, t) and t not in producer and t not in inputs:
                raise HwbenchError(f"{name}: op {v} {op.type} reads tensor {t} '{graph.tensors[t].name}', which no op "
                                   f"produces and which is neither a graph input nor a constant (a dangling tensor)")
    for t in graph.outputs:
        if t not in producer and t not in inputs and not graph.tensors[t].is_constant:
            raise HwbenchError(f"{name}: graph output tensor {t} '{graph.tensors[t].name}' is never produced")
    # Kahn's algorithm, preferring the lowest op index so a valid file order comes back unchanged.
    import heapq

    succ: list[set[int]] = [set() for _ in graph.ops]
    indegree = [0] * len(graph.ops)
    for v, op in enumerate(graph.ops):
        preds = {producer[t] for t in op.inputs if t in producer}
        indegree[v] = len(preds)
        for u in preds:
            succ[u].add(v)
    ready = [v for v in range(len(graph.ops)) if indegree[v] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in succ[u]:
            indegree[v] -= 1
            if indegree[v] == 0:
                heapq.heappush(ready, v)
    if len(order) != len(graph.ops):
        stuck = sorted(v for v in range(len(graph.ops)) if indegree[v] > 0)
        raise HwbenchError(f"{name}: the ops form a cycle (ops {', '.join(map(str, stuck[:8]))}"
                           f"{', ...' if len(stuck) > 8 else ''} wait on each other); no execution order exists")
    return tuple(order)


class Problem:
    """The graph reduced to what scheduling needs: buffers, their sizes, who makes and reads them.

    With `inplace`, alias ops' inputs and outputs are one buffer; the conditional "overwrite"
    sharing depends on the order and is decided per step by `overwrite_choice`.
    """

    def __init__(self, graph: Graph, inplace: bool = True):
        self.graph = graph
        self.inplace = inplace
        self.topological_order = check_graph(graph)
        n = len(graph.ops)
        self.n = n
        # Union the tensors an alias op ties together.
        parent: dict[int, int] = {}

        def find(t: int) -> int:
            while parent.get(t, t) != t:
                t = parent[t]
            return t

        rules = [reuse_rule(graph, op) if inplace else None for op in graph.ops]
        for v in self.topological_order:
            rule, op = rules[v], graph.ops[v]
            if rule is not None and rule.kind == "alias":
                parent[find(op.outputs[0])] = find(op.inputs[rule.inputs[0]])
        activations = sorted({t for op in graph.ops for t in op.inputs + op.outputs if is_activation(graph, t)}
                             | {t for t in graph.inputs + graph.outputs if is_activation(graph, t)})
        roots = sorted({find(t) for t in activations})
        self.buffer_of = {t: roots.index(find(t)) for t in activations}
        self.members: list[list[int]] = [[] for _ in roots]
        for t in activations:
            self.members[self.buffer_of[t]].append(t)
        self.size = [graph.tensors[roots[b]].nbytes for b in range(len(roots))]
        self.pinned = [any(t in graph.outputs for t in m) for m in self.members]  # graph outputs live to the end
        self.is_input = [any(t in graph.inputs for t in m) for m in self.members]
        self.in_bufs: list[tuple[int, ...]] = []
        self.new_bufs: list[tuple[int, ...]] = []
        self.producer = [-1] * len(roots)
        self.consumers = [0] * len(roots)  # bitmask of the ops that read each buffer
        self.overwrite: list[tuple[int, ...]] = []  # buffers an op may overwrite, in order of preference
        for v, op in enumerate(graph.ops):
            ins = tuple(dict.fromkeys(self.buffer_of[t] for t in op.inputs if is_activation(graph, t)))
            news = tuple(dict.fromkeys(self.buffer_of[t] for t in op.outputs if self.buffer_of[t] not in ins))
            self.in_bufs.append(ins)
            self.new_bufs.append(news)
            for b in ins:
                self.consumers[b] |= 1 << v
            for b in news:
                self.producer[b] = v
            rule = rules[v]
            if rule is not None and rule.kind == "overwrite" and len(news) == 1:
                cands = tuple(dict.fromkeys(self.buffer_of[op.inputs[p]] for p in rule.inputs))
                self.overwrite.append(tuple(b for b in cands if self.size[b] == self.size[news[0]]))
            else:
                self.overwrite.append(())
        # Buffers no op reads and no step keeps: graph inputs that nobody reads stay (pinned);
        # op outputs that nobody reads and that are not graph outputs die right after their op.
        for b in range(len(roots)):
            if self.is_input[b] and not self.consumers[b]:
                self.pinned[b] = True
        # Dependencies follow tensors, not buffers: a reader of an alias op's output waits for that op.
        made_by = {t: v for v, op in enumerate(graph.ops) for t in op.outputs}
        self.pred = [0] * n
        for v, op in enumerate(graph.ops):
            for t in op.inputs:
                if t in made_by:
                    self.pred[v] |= 1 << made_by[t]
        self.out_size = [sum(self.size[b] for b in self.new_bufs[v]) for v in range(n)]
        self.succ = [[u for u in range(n) if self.pred[u] >> v & 1] for v in range(n)]
        # For `step`: each op's freeable inputs as (buffer, size, readers), and its unread outputs' size.
        self._freeable = [tuple((b, self.size[b], self.consumers[b]) for b in self.in_bufs[v] if not self.pinned[b])
                          for v in range(n)]
        self._unread = [sum(self.size[b] for b in self.new_bufs[v] if not self.consumers[b] and not self.pinned[b])
                        for v in range(n)]
        self.initial_live = sum(self.size[b] for b in range(len(roots)) if self.is_input[b])
        # The least memory op v can ever run in: its inputs and outputs, less the largest overwrite.
        self.min_working_set = [
            sum(self.size[b] for b in self.in_bufs[v]) + self.out_size[v]
            - max((self.size[b] for b in self.overwrite[v] if not self.pinned[b]), default=0)
            for v in range(n)]

    def step(self, done: int, v: int) -> tuple[int, int, int | None]:
        """Running op v after the ops in bitmask `done`: (bytes added while it runs, bytes freed
        after it, the buffer its output overwrites or None)."""
        bit, pending = 1 << v, ~done
        freed = self._unread[v]
        if not self.overwrite[v]:
            for _, size, readers in self._freeable[v]:
                if readers & pending == bit:
                    freed += size
            return self.out_size[v], freed, None
        dying = [b for b, size, readers in self._freeable[v] if readers & pending == bit]
        reused = self.overwrite_choice(v, dying)
        freed += sum(self.size[b] for b in dying)
        if reused is None:
            return self.out_size[v], freed, None
        return self.out_size[v] - self.size[reused], freed - self.size[reused], reused

    def overwrite_choice(self, v: int, dying: Sequence[int]) -> int | None:
        for b in self.overwrite[v]:
            if b in dying:
                return b
        return None


@dataclass(frozen=True)
class Buffer:
    """One region of the arena: the tensors that share it, its size, and the steps it is alive
    (first and last inclusive, as indices into the execution order). A scratch buffer holds no
    tensor: it belongs to op `scratch_of` and lives during that op's step only."""

    tensors: tuple[int, ...]
    size: int
    first: int
    last: int
    scratch_of: int | None = None

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def check_order(graph: Graph, order: Sequence[int], problem: Problem | None = None) -> None:
    problem = problem or Problem(graph, inplace=False)
    if sorted(order) != list(range(problem.n)):
        raise HwbenchError(f"{graph.name or 'the graph'}: an execution order must list each of the "
                           f"{problem.n} ops once, got {list(order)}")
    done = 0
    for v in order:
        if problem.pred[v] & ~done:
            raise HwbenchError(f"{graph.name or 'the graph'}: op {v} {graph.ops[v].type} comes before an op "
                               f"that produces one of its inputs")
        done |= 1 << v


def buffers(graph: Graph, order: Sequence[int], inplace: bool = True) -> list[Buffer]:
    """The arena's buffers under `order`: tensors sharing memory merged, with their lifetimes."""
    problem = Problem(graph, inplace)
    check_order(graph, order, problem)
    last_step = len(order) - 1
    first = {b: 0 for b in range(len(problem.size)) if problem.is_input[b]}
    last: dict[int, int] = {}
    region = list(range(len(problem.size)))  # buffer -> the buffer whose memory it occupies
    done = 0
    for t, v in enumerate(order):
        added, freed, reused = problem.step(done, v)
        for b in problem.new_bufs[v]:
            first[b] = t
            last[b] = t
        for b in problem.in_bufs[v]:
            last[b] = t
        if reused is not None:
            region[problem.new_bufs[v][0]] = region[reused]
        done |= 1 << v
    merged: dict[int, list[int]] = {}
    for b in range(len(problem.size)):
        if problem.pinned[b]:
            last[b] = last_step
        merged.setdefault(_root(region, b), []).append(b)
    result = []
    for group in merged.values():
        tensors = tuple(sorted(t for b in group for t in problem.members[b]))
        result.append(Buffer(tensors=tensors, size=max(problem.size[b] for b in group),
                             first=min(first[b] for b in group), last=max(last.get(b, first[b]) for b in group)))
    return sorted(result, key=lambda b: (b.first, b.tensors))


def scratch_buffers(order: Sequence[int], scratch: Mapping[int, int]) -> list[Buffer]:
    """The scratch buffers of the ops in `order` that need one (`scratch`: op index -> bytes)."""
    return [Buffer((), scratch[v], t, t, scratch_of=v) for t, v in enumerate(order) if scratch.get(v, 0) > 0]


def _root(region: list[int], b: int) -> int:
    while region[b] != b:
        b = region[b]
    return b


def timeline(bufs: Sequence[Buffer], steps: int) -> list[int]:
    """Live bytes at each step."""
    live = [0] * steps
    for b in bufs:
        for t in range(b.first, b.last + 1):
            live[t] += b.size
    return live


def order_peak(graph: Graph, order: Sequence[int], inplace: bool = True) -> int:
    """The peak of a given execution order."""
    return max(timeline(buffers(graph, order, inplace), len(order)), default=0)
