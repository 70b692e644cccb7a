"""Peak-memory scheduling and arena planning (hwbench.memory) and `hwbench analyze`.

Expected values come from hand computation, from this file's own brute-force simulator (written
independently of hwbench.memory), from published MLPerf Tiny figures (optimal peaks computed independently of hwbench), or from TFLM.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbench.errors import HwbenchError, ModelError
from hwbench.graph import Graph, Op, Tensor
from hwbench.memory import (Buffer, layout, memory_report, order_peak, overlaps, plan_arena, reuse_rule,
                            schedule)

ROOT = Path(__file__).resolve().parents[1]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
NO_MLPERF = f"the MLPerf Tiny models are not here ({MLPERF} is absent: a fresh clone has no ../shared)"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("memory_benchmark", ROOT / "benchmarks" / "memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


# --- small graphs written by hand ----------------------------------------------------------------

def make_graph(sizes: dict[str, int], ops: list[tuple[str, list[str], list[str]]], inputs: list[str],
               outputs: list[str]) -> Graph:
    """Tensors named by letters with byte sizes (int8, 1-D); an op is (type, inputs, outputs);
    an input name starting with 'w' is a constant (a weight)."""
    names = list(sizes)
    tensors = [Tensor(n, (sizes[n],), "int8", data=np.zeros(sizes[n], np.int8) if n.startswith("w") else None)
               for n in names]
    index = names.index
    return Graph(tensors, [Op(t, tuple(map(index, i)), tuple(map(index, o))) for t, i, o in ops],
                 tuple(map(index, inputs)), tuple(map(index, outputs)), name="hand")


def test_chain_peak_is_largest_neighbouring_pair():
    g = make_graph({"a": 100, "b": 200, "c": 50, "d": 10, "w": 999},
                   [("CONV_2D", ["a", "w"], ["b"]), ("CONV_2D", ["b", "w"], ["c"]), ("FULLY_CONNECTED", ["c", "w"], ["d"])],
                   ["a"], ["d"])
    s = schedule(g)
    assert s.order == (0, 1, 2) and s.peak_bytes == 300 and s.exact  # a+b; weights not counted


def test_order_matters_and_file_order_is_reported():
    # Two branches from the input x (100 B): a big one x→p (1000) →q (10) and one x→r (300) →s (5).
    g = make_graph({"x": 100, "p": 1000, "q": 10, "r": 300, "s": 5, "y": 10, "w": 1},
                   [("CONV_2D", ["x", "w"], ["r"]),
                    ("CONV_2D", ["x", "w"], ["p"]),
                    ("CONV_2D", ["p", "w"], ["q"]),
                    ("CONV_2D", ["r", "w"], ["s"]),
                    ("CONCATENATION", ["q", "s"], ["y"])],
                   ["x"], ["y"])
    report = memory_report(g, alignment=1)
    # File order: r is made first and still waits for its reader while x→p runs: x+r+p = 1400.
    assert report.peak_bytes_file_order == 1400
    # Best: finish the r branch first (x+r+s = 405), then x→p with only s (5) waiting: x+s+p = 1105.
    # (Big branch first is worse: x must stay for r: x+p+q = 1110.)
    assert report.peak_bytes == report.peak_bytes_no_inplace == 1105
    assert report.order == (0, 3, 1, 2, 4) and report.exact
    assert report.arena.size == 1105


def test_inplace_rule():
    g = make_graph({"x": 64, "a": 64, "b": 64, "r": 64, "s": 64, "y": 32, "z": 64, "w": 8},
                   [("CONV_2D", ["x", "w"], ["a"]), ("RELU", ["a"], ["b"]), ("RESHAPE", ["b", "w"], ["r"]),
                    ("ADD", ["r", "x"], ["s"]), ("MAX_POOL_2D", ["s"], ["y"]), ("ADD", ["x", "w"], ["z"])],
                   ["x"], ["y", "z"])
    rules = [reuse_rule(g, op) for op in g.ops]
    assert rules[0] is None and rules[4] is None
    assert (rules[1].kind, rules[1].inputs) == ("overwrite", (0,))
    assert (rules[2].kind, rules[2].inputs) == ("alias", (0,))
    assert (rules[3].kind, rules[3].inputs) == ("overwrite", (0, 1))
    assert (rules[5].kind, rules[5].inputs) == ("overwrite", (0,))  # the constant operand never
    # In file order without reuse: CONV x+a=128, RELU x+a+b=192, RESHAPE x+b+r=192, ADD x+r+s=192,
    # POOL x+s+y=160, ADD x+y+z=160.
    assert order_peak(g, range(6), inplace=False) == 192
    # With reuse: a, b, r, s share one 64-byte buffer (x stays alive for the last ADD): 128 everywhere,
    # then POOL x+s+y = 160, and the last ADD may overwrite x, which dies there: x/z + y = 96.
    assert order_peak(g, range(6), inplace=True) == 160
    # Running the last ADD first (x still read later, so no overwrite) keeps z (64) alive beside
    # x and the shared a/b/r/s buffer: 192.
    assert order_peak(g, (5, 0, 1, 2, 3, 4), inplace=True) == 192


def test_reader_of_an_alias_waits_for_the_alias_op():
    # RESHAPE of a graph input shares its buffer, but the ADD reading the reshaped tensor must still
    # run after the RESHAPE (a dependency follows the tensor, not the buffer).
    g = make_graph({"x": 8, "y": 8, "r": 8, "s": 8}, [("RESHAPE", ["x"], ["r"]), ("ADD", ["r", "y"], ["s"])],
                   ["x", "y"], ["s"])
    s = schedule(g)
    assert s.order == (0, 1) and s.peak_bytes == 16  # x/r and y; s overwrites r


def test_inplace_needs_equal_sizes():
    g = make_graph({"x": 64, "y": 8, "z": 64}, [("ADD", ["x", "y"], ["z"])], ["x", "y"], ["z"])
    assert reuse_rule(g, g.ops[0]).inputs == (0,)  # y is broadcast: never overwritten
    assert schedule(g).peak_bytes == 72  # x dies at the ADD, z takes its place
    assert schedule(g, inplace=False).peak_bytes == 136


# --- an independent brute-force simulator ---------------------------------------------------------

OVERWRITE = {"ADD": (0, 1), "SUB": (0, 1), "MUL": (0, 1), "RELU": (0,), "RELU6": (0,), "TANH": (0,),
             "LOGISTIC": (0,), "LEAKY_RELU": (0,), "HARD_SWISH": (0,), "QUANTIZE": (0,)}


def simulate_peak(g: Graph, order: list[int], inplace: bool) -> int:
    """Peak of `order`: memory blocks made, shared and released step by step."""
    n = len(order)
    act = lambda t: t >= 0 and not g.tensors[t].is_constant  # noqa: E731
    reads: dict[int, list[int]] = {}
    for step, v in enumerate(order):
        for t in g.ops[v].inputs:
            if act(t):
                reads.setdefault(t, []).append(step)
    block_of: dict[int, int] = {}
    block_size, block_first = {}, {}
    for t in g.inputs:
        block_of[t] = len(block_size)
        block_size[block_of[t]], block_first[block_of[t]] = g.tensors[t].nbytes, 0

    def members(b):
        return [t for t, bb in block_of.items() if bb == b]

    for step, v in enumerate(order):
        op = g.ops[v]
        out = op.outputs[0]
        shared = None
        if inplace and len(op.outputs) == 1:
            size = g.tensors[out].nbytes
            fits = lambda p: (p < len(op.inputs) and act(op.inputs[p])  # noqa: E731
                              and g.tensors[op.inputs[p]].nbytes == size)
            if op.type in ("RESHAPE", "SQUEEZE") and fits(0):
                shared = block_of[op.inputs[0]]
            for p in OVERWRITE.get(op.type, ()):
                if shared is None and fits(p):
                    b = block_of[op.inputs[p]]
                    later = any(s > step for t in members(b) for s in reads.get(t, []))
                    if not later and not any(t in g.outputs for t in members(b)):
                        shared = b
        for t in op.outputs:
            if shared is not None:
                block_of[t] = shared
            else:
                block_of[t] = len(block_size)
                block_size[block_of[t]], block_first[block_of[t]] = g.tensors[t].nbytes, step
    live = [0] * n
    for b, size in block_size.items():
        ts = members(b)
        if any(t in g.outputs for t in ts) or (block_first[b] == 0 and any(t in g.inputs for t in ts)
                                               and not any(t in reads for t in ts)):
            last = n - 1
        else:
            last = max([s for t in ts for s in reads.get(t, [])] + [block_first[b]])
        for s in range(block_first[b], last + 1):
            live[s] += size
    return max(live)


def topological_orders(g: Graph):
    producer = {t: v for v, op in enumerate(g.ops) for t in op.outputs}
    preds = [{producer[t] for t in op.inputs if t in producer} for op in g.ops]

    def extend(order, done):
        if len(order) == len(g.ops):
            yield list(order)
            return
        for v in range(len(g.ops)):
            if v not in done and preds[v] <= done:
                order.append(v)
                done.add(v)
                yield from extend(order, done)
                order.pop()
                done.remove(v)

    yield from extend([], set())


def is_valid_order(g: Graph, order) -> bool:
    """Every op once, and after the ops that produce its inputs."""
    position = {v: i for i, v in enumerate(order)}
    producer = {t: v for v, op in enumerate(g.ops) for t in op.outputs}
    return sorted(order) == list(range(len(g.ops))) and all(
        position[producer[t]] < position[v] for v, op in enumerate(g.ops) for t in op.inputs if t in producer)


@st.composite
def random_dags(draw, max_ops: int = 7):
    """Random DAGs of 1..max_ops ops over 1-D int8 tensors: convolutions, poolings, reshapes,
    elementwise ops and concatenations, some outputs unread, sizes often equal (so in-place applies)."""
    n_inputs = draw(st.integers(1, 2))
    tensors = [Tensor(f"in{i}", (draw(st.sampled_from([8, 16, 24])),), "int8") for i in range(n_inputs)]
    tensors.append(Tensor("w", (4,), "int8", data=np.zeros(4, np.int8)))
    available = list(range(n_inputs))
    ops = []
    for k in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["CONV_2D", "MAX_POOL_2D", "RESHAPE", "RELU", "ADD", "MUL", "CONCATENATION"]))
        arity = 2 if kind in ("ADD", "MUL", "CONCATENATION") else 1
        ins = [draw(st.sampled_from(available)) for _ in range(arity)]
        first = tensors[ins[0]].nbytes
        if kind in ("RESHAPE", "RELU") or (kind in ("ADD", "MUL") and draw(st.booleans())):
            size = first
        else:
            size = draw(st.sampled_from([4, 8, 16, 24, 32, 48]))
        tensors.append(Tensor(f"t{k}", (size,), "int8"))
        if kind == "CONV_2D":
            ins.append(n_inputs)  # the weight
        ops.append(Op(kind, tuple(ins), (len(tensors) - 1,)))
        available.append(len(tensors) - 1)
    read = {t for op in ops for t in op.inputs}
    outputs = [ops[-1].outputs[0]] + [op.outputs[0] for op in ops[:-1]
                                      if op.outputs[0] not in read and draw(st.booleans())]
    return Graph(tensors, ops, tuple(range(n_inputs)), tuple(dict.fromkeys(outputs)), name="random")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_exact_order_is_no_worse_than_any_order(g):
    for inplace in (False, True):
        s = schedule(g, inplace=inplace)
        peaks = [simulate_peak(g, order, inplace) for order in topological_orders(g)]
        assert s.exact
        assert list(s.order) in list(topological_orders(g))
        assert s.peak_bytes == min(peaks)
        assert simulate_peak(g, list(s.order), inplace) == s.peak_bytes
        for order in itertools.islice(topological_orders(g), 20):
            assert order_peak(g, order, inplace) == simulate_peak(g, order, inplace)


@settings(max_examples=100, deadline=None)
@given(random_dags(max_ops=10), st.sampled_from([1, 4, 16]))
def test_arena_of_random_graph_is_overlap_free(g, alignment):
    s = schedule(g)
    arena = plan_arena(g, s.order, alignment=alignment)
    assert overlaps(arena) == []
    assert arena.size >= arena.lower_bound >= s.peak_bytes
    assert all(offset % alignment == 0 for offset in arena.offsets.values())
    graph_tensors = {t for op in g.ops for t in op.inputs + op.outputs if not g.tensors[t].is_constant}
    assert set(arena.offsets) == graph_tensors | set(g.inputs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6), st.integers(1, 100)), min_size=1, max_size=25),
       st.sampled_from([1, 8, 16]))
def test_layout_of_random_lifetimes_is_overlap_free(items, alignment):
    bufs = [Buffer((i,), size, first, min(first + length, 12)) for i, (first, length, size) in enumerate(items)]
    arena = layout(bufs, 13, alignment=alignment)
    assert overlaps(arena) == []
    live = [sum(-(-b.size // alignment) * alignment for b in bufs if b.first <= t <= b.last) for t in range(13)]
    assert arena.lower_bound == max(live) <= arena.size


def test_scratch_buffers_live_during_their_op_only():
    # x (100) -> a (300) -> b (100) -> y (10); ops 1 and 2 get 40 and 500 B of scratch.
    g = make_graph({"x": 100, "a": 300, "b": 100, "y": 10, "w": 1},
                   [("CONV_2D", ["x", "w"], ["a"]), ("CONV_2D", ["a", "w"], ["b"]), ("CONV_2D", ["b", "w"], ["y"])],
                   ["x"], ["y"])
    plain = plan_arena(g, (0, 1, 2), alignment=1, scratch={})
    assert plain.size == 400 and plain.scratch == {} and plain.scratch_bytes == 0
    arena = plan_arena(g, (0, 1, 2), alignment=1, scratch={1: 40, 2: 500})
    # Steps need x+a = 400, a+b+40 = 440 and b+y+500 = 610 bytes.
    assert overlaps(arena) == [] and arena.size == arena.lower_bound == 610
    assert {op: size for op, (_, size) in arena.scratch.items()} == {1: 40, 2: 500} and arena.scratch_bytes == 500
    assert set(arena.offsets) == {0, 1, 2, 3}  # tensors only
    assert memory_report(g, alignment=1).arena.size == 400  # no op of this graph takes a path with scratch


def test_overlap_checker_finds_a_clash():
    bufs = [Buffer((0,), 16, 0, 2), Buffer((1,), 16, 1, 3)]
    arena = layout(bufs, 4, alignment=1)
    assert overlaps(arena) == [] and arena.size == 32
    from dataclasses import replace
    clash = replace(arena, placed=(arena.placed[0], replace(arena.placed[1], offset=arena.placed[0].offset + 8)))
    assert len(overlaps(clash)) >= 1


# --- bad graphs ------------------------------------------------------------------------------------

def test_cycle_is_a_clear_error():
    g = make_graph({"x": 4, "a": 4, "b": 4}, [("ADD", ["x", "b"], ["a"]), ("RELU", ["a"], ["b"])], ["x"], ["b"])
    with pytest.raises(HwbenchError, match="cycle"):
        schedule(g)


def test_dangling_tensor_is_a_clear_error():
    g = make_graph({"x": 4, "ghost": 4, "a": 4}, [("ADD", ["x", "ghost"], ["a"])], ["x"], ["a"])
    with pytest.raises(HwbenchError, match="dangling.*|.*ghost.*"):
        schedule(g)
    with pytest.raises(HwbenchError, match="ghost"):
        plan_arena(g, [0])


def test_bad_order_is_refused():
    g = make_graph({"x": 4, "a": 4, "b": 4}, [("RELU", ["x"], ["a"]), ("RELU", ["a"], ["b"])], ["x"], ["b"])
    with pytest.raises(HwbenchError, match="before"):
        plan_arena(g, [1, 0])
    with pytest.raises(HwbenchError, match="once"):
        order_peak(g, [0])


def test_second_subgraph_is_a_clear_error(tmp_path):
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    if not MLPERF.is_dir():
        pytest.skip(NO_MLPERF)
    model = schema.ModelT.InitFromPackedBuf((MLPERF / "ad01_int8.tflite").read_bytes(), 0)
    model.subgraphs.append(model.subgraphs[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "two.tflite"
    path.write_bytes(bytes(builder.Output()))
    from hwbench.tflite_reader import read_tflite
    with pytest.raises(ModelError, match="2 subgraphs"):
        read_tflite(path)


# --- budget and speed ------------------------------------------------------------------------------

def test_budget_fallback_on_a_wide_graph():
    g = bench.funnel_graph(1, branches=8, depth=4)
    s = schedule(g, inplace=False, max_states=50)
    assert not s.exact
    assert order_peak(g, s.order, inplace=False) == s.peak_bytes
    assert s.peak_bytes <= order_peak(g, range(len(g.ops)), inplace=False)


@pytest.mark.parametrize("blocks,branches,depth", [(3, 4, 4), (2, 6, 4), (3, 5, 3), (2, 4, 6)])
def test_graphs_up_to_60_ops_schedule_within_a_second(blocks, branches, depth):
    g = bench.funnel_graph(blocks, branches, depth)
    assert len(g.ops) <= 60
    for inplace in (True, False):
        start = time.perf_counter()
        s = schedule(g, inplace=inplace)
        assert time.perf_counter() - start <= 1.0 and s.exact
        # The search beat the file order here (branch after branch in the file, one at a time is better).
        assert s.peak_bytes <= order_peak(g, range(len(g.ops)), inplace)


def test_160_op_mobilenet_v2_within_ten_seconds():
    g = bench.mobilenet_v2_graph(extra_repeats=10)
    assert len(g.ops) == 160
    for inplace in (True, False):
        start = time.perf_counter()
        s = schedule(g, inplace=inplace)
        assert time.perf_counter() - start <= 10.0 and s.exact
        assert order_peak(g, s.order, inplace) == s.peak_bytes
        arena = plan_arena(g, s.order, alignment=16)
        assert overlaps(arena) == []


def test_mobilenet_v2_peak_by_hand():
    # Without reuse the largest step is the first block's expansion: 48×48×(8·6=48) in + ... computed:
    # stem output 48×48×8 (18,432) → stage-0 depthwise (18,432 in, 18,432 out) → project to 8.
    # Stage 1 first block: expand 48×48×8 → 48×48×48 (110,592), its ReLU6 copy (another 110,592):
    # 221,184 without reuse; with the ReLU6 in place, expand conv in+out = 18,432 + 110,592 = 129,024,
    # then depthwise 48×48×48 in → 24×24×48 out: 110,592 + 27,648 = 138,240.
    g = bench.mobilenet_v2_graph()
    assert schedule(g, inplace=False).peak_bytes == 221_184
    assert schedule(g, inplace=True).peak_bytes == 138_240


# --- real models -------------------------------------------------------------------------------------

MLPERF_PEAKS = {"kws_ref_model.tflite": 16_000, "vww_96_int8.tflite": 55_296,
                "pretrainedResnet_quant.tflite": 49_152, "ad01_int8.tflite": 768, "str_ww_ref_model.tflite": 6_656}


@pytest.mark.parametrize("name", sorted(MLPERF_PEAKS))
def test_mlperf_tiny_optimal_peaks(name):
    if not MLPERF.is_dir():
        pytest.skip(NO_MLPERF)
    from hwbench.tflite_reader import read_tflite

    g = read_tflite(MLPERF / name)
    report = memory_report(g, alignment=16)
    assert report.peak_bytes_no_inplace == MLPERF_PEAKS[name] and report.exact_no_inplace
    assert report.peak_bytes <= report.peak_bytes_no_inplace and report.exact and is_valid_order(g, report.order)
    assert overlaps(report.arena) == []
    # The arena adds the kernels' scratch buffers to the activations; the activations alone are laid
    # out as tightly as TFLM lays them out, or better.
    activations = plan_arena(g, report.order, scratch={})
    assert report.arena.size == report.arena.lower_bound <= activations.size + report.arena.scratch_bytes
    tflm = pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install -e .[dev])")
    assert tflm
    assert activations.size <= bench.tflm_head_bytes(MLPERF / name)


def test_vww_beats_tflm():
    if not MLPERF.is_dir():
        pytest.skip(NO_MLPERF)
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install -e .[dev])")
    assert bench.tflm_head_bytes(MLPERF / "vww_96_int8.tflite") == 73_728  # TFLM's greedy planner, measured independently
    from hwbench.tflite_reader import read_tflite
    g = read_tflite(MLPERF / "vww_96_int8.tflite")
    report = memory_report(g)
    assert plan_arena(g, report.order, scratch={}).size == 55_296  # the activations: the optimal peak
    assert report.arena.size < 55_296 + 1024  # with the largest scratch buffer (1 KiB), partly in a gap


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from hwbench.generate import generate_models

    folder = tmp_path_factory.mktemp("population")
    entries = generate_models(20, seed=11, out_dir=folder, jobs=2)
    return [folder / e["file"] for e in entries]


def test_generated_models_arena_equals_peak_and_beats_tflm(generated):
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install -e .[dev])")
    from hwbench.tflite_reader import read_tflite

    equal = 0
    for path in generated:
        g = read_tflite(path)
        report = memory_report(g, alignment=16)
        assert report.exact and is_valid_order(g, report.order)
        assert simulate_peak(g, list(report.order), True) == report.peak_bytes
        assert report.peak_bytes <= report.peak_bytes_file_order
        assert overlaps(report.arena) == []
        assert plan_arena(g, report.order, scratch={}).size <= bench.tflm_head_bytes(path), path.name
        tight = plan_arena(g, report.order, alignment=1, scratch={})
        assert overlaps(tight) == []
        equal += tight.size == report.peak_bytes
    assert equal >= 0.95 * len(generated)


# --- hwbench analyze ---------------------------------------------------------------------------------

def run_cli(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "hwbench.cli", *args], capture_output=True, text=True, timeout=120)


def test_analyze_json_board_and_plot(generated, tmp_path):
    from hwbench.costs import graph_cost
    from hwbench.tflite_reader import read_tflite

    path = generated[0]
    png = tmp_path / "timeline.png"
    done = run_cli("analyze", str(path), "--board", "nucleo-f411re", "--json", "--plot", str(png))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    g = read_tflite(path)
    cost = graph_cost(g)
    assert result["macs"] == cost.macs and result["weights_bytes"] == cost.weight_bytes
    for key in ("peak_bytes", "peak_bytes_no_inplace", "peak_bytes_file_order", "arena_bytes"):
        assert isinstance(result[key], int) and result[key] > 0
    assert result["exact"] is True
    assert is_valid_order(g, result["order"])
    assert [l["index"] for l in result["layers"]] == result["order"]
    assert max(l["live_bytes"] for l in result["layers"]) == result["peak_bytes"]
    assert result["peak_bytes"] == simulate_peak(g, result["order"], True)
    assert result["peak_bytes_file_order"] == simulate_peak(g, list(range(len(g.ops))), True)
    board = result["board"]
    assert board["sram_bytes"] == 128 * 1024 and board["flash_bytes"] == 512 * 1024  # the F411RE
    assert board["sram_margin_bytes"] == 128 * 1024 - result["arena_bytes"]
    assert board["fits_sram"] == (result["arena_bytes"] <= 128 * 1024)
    assert board["flash_margin_bytes"] == 512 * 1024 - cost.weight_bytes
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analyze_table_and_errors(generated):
    done = run_cli("analyze", str(generated[1]), "--board", "nucleo-f411re")
    assert done.returncode == 0, done.stderr
    assert "peak" in done.stdout and "arena" in done.stdout and "SRAM" in done.stdout
    bad = run_cli("analyze", str(generated[1]), "--board", "no-such-board")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "no-such-board" in bad.stderr
    missing = run_cli("analyze", "missing.tflite")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "missing.tflite" in missing.stderr
