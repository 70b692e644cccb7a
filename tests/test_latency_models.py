"""Latency models: loop-count features, the regressors and their fast tree walk, fitting with grouped
cross-validation, the MACs baseline, the artifact's checks, and `hwbench fit` / `hwbench predict`
on counts collected from real QEMU boards."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hwbench.boards import get_board
from hwbench.cli import main
from hwbench.costs import op_macs
from hwbench.errors import HwbenchError
from hwbench.graph import KNOWN_OPS, Graph, Op, Quantization, Tensor
from hwbench.kernel_paths import kernel_path
from hwbench.memory import memory_report
from hwbench.results import ResultsDB
from hwbench.tflite_reader import read_tflite
from latency_models.artifact import ArtifactError, load_artifact, save_artifact
from latency_models.baseline import MacsBaseline
from latency_models.dataset import load_dataset
from hwbench.windows import same_padding, window_extent
from latency_models.features import (COPY, FILL, GENERIC, KINDS, MEMCPY, copy_trips, fill_trips, graph_features,
                                     kind_of, memcpy_trips, op_kind)
from latency_models.metrics import accuracy
from latency_models.model import NEGLIGIBLE_ERROR, LatencyModel, grouped_folds
from latency_models.regressors import CANDIDATES, CompiledTrees, LoopCountRegressor
from latency_models.training import fit_dataset

BOARD = "mps2-an386"
N_MODELS = 100
N_TRAIN = 80  # enough models that every operator kind, and the depthwise fast path, has training layers


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """N_MODELS generated models measured on the emulated board: (results DB, model files)."""
    from firmware_runner.collect import collect
    from hwbench.generate import generate_models

    folder = tmp_path_factory.mktemp("latency")
    generate_models(N_MODELS, seed=61, out_dir=folder / "models", jobs=2)
    files = sorted((folder / "models").glob("*.tflite"))
    db = folder / "results.db"
    measured = collect(get_board(BOARD), files, ResultsDB(db), repeats=1, jobs=2)
    assert all(m.status == "measured" and m.verified for m in measured), \
        [(m.model, m.status, m.reason) for m in measured if m.status != "measured"]
    return db, files


@pytest.fixture(scope="module")
def dataset(collected):
    return load_dataset(collected[0], BOARD)


@pytest.fixture(scope="module")
def fitted(dataset):
    """Fitted on the first N_TRAIN models, the others held out. Every kind in them gets a regressor of
    its own (the rarest has 4 training layers): the fallback is tested on its own further down."""
    train, test = dataset.subset(range(N_TRAIN)), dataset.subset(range(N_TRAIN, N_MODELS))
    model = LatencyModel(min_layers=4, cv_folds=3)
    return fit_dataset(train, test, clock_hz=get_board(BOARD).clock_hz, model=model)


@pytest.fixture(scope="module")
def artifact_file(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifact") / "an386.latmodel"
    fitted.save(path)
    return path


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def copy_db(source: Path, target: Path) -> Path:
    """A consistent copy of a results DB (it is in WAL mode: the file alone may lag behind)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def one_error_line(code: int, err: str) -> str:
    assert code == 1 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------ features


def kernel_taps(size: int, filter_size: int, out: int, stride: int, pad: int) -> int:
    """What the kernels' loops do: for each output position, the window taps inside the input."""
    total = 0
    for o in range(out):
        origin = o * stride - pad
        total += max(min(size - origin, filter_size) - max(-origin, 0), 0)
    return total


def test_window_taps_match_the_kernel_loops():
    checked = 0
    for size in (1, 2, 5, 8, 13, 49):
        for filter_size in (1, 2, 3, 4, 5, 7, 10):
            for stride in (1, 2, 3):
                for padding in ("SAME", "VALID"):
                    if padding == "VALID" and filter_size > size:
                        continue
                    out = -(-size // stride) if padding == "SAME" else (size - filter_size) // stride + 1
                    pad = same_padding(stride, size, filter_size, out)
                    assert window_extent(size, filter_size, out, stride, pad) == \
                        kernel_taps(size, filter_size, out, stride, pad), (size, filter_size, stride, padding)
                    checked += 1
    assert checked > 200


def _tensor(name, shape, constant=False):
    q = Quantization(np.array([0.05], dtype=np.float32), np.array([0]))
    data = np.zeros(shape, dtype=np.int8) if constant else None
    return Tensor(name, tuple(shape), "int8", q, data)


def conv_graph(padding: str, kernel: int, stride: int = 1, size: int = 8, cin: int = 3, cout: int = 4) -> Graph:
    out = -(-size // stride) if padding == "SAME" else (size - kernel) // stride + 1
    tensors = [_tensor("x", (1, size, size, cin)), _tensor("w", (cout, kernel, kernel, cin), constant=True),
               _tensor("y", (1, out, out, cout))]
    op = Op("CONV_2D", (0, 1, -1), (2,), {"padding": padding, "stride_h": stride, "stride_w": stride,
                                         "fused_activation_function": "RELU"})
    return Graph(tensors, [op], (0,), (2,), "conv")


def graph_with_a_fallback_op() -> Graph:
    """A CONV_2D, a CONCATENATION, then an operator no kind knows (it can only take the GENERIC
    regressor)."""
    graph = conv_graph("SAME", 3)
    graph.tensors.append(_tensor("z", (1, 8, 8, 8)))
    graph.ops.append(Op("CONCATENATION", (2, 2), (3,), {"axis": 3}))
    graph.ops.append(Op("SOME_FUTURE_OP", (3,), (3,), {}))
    graph.outputs = (3,)
    return graph


def test_conv_features_count_only_the_taps_inside_the_input():
    reference = KINDS["CONV_2D"]  # the reference path's loops (grouped and dilated convolutions take it)
    valid = conv_graph("VALID", 3)
    row = dict(zip(reference.names, reference.compute(valid, valid.ops[0])))
    assert row["macs_inside"] == op_macs(valid, valid.ops[0]) == 6 * 6 * 4 * 3 * 3 * 3
    same = conv_graph("SAME", 3)
    row = dict(zip(reference.names, reference.compute(same, same.ops[0])))
    # 8 output columns see 3+3+3+3+3+3+2+2 = 22 taps, not 24; rows the same: 22 × 22 per output channel.
    assert row["macs_inside"] == 22 * 22 * 4 * 3 < op_macs(same, same.ops[0])
    assert row["outputs"] == 8 * 8 * 4 and row["window_rows"] == 22 * 8 * 4 and row["window_taps"] == 22 * 22 * 4


def test_ops_are_grouped_by_kind_and_unknown_ops_get_generic_features():
    graph = graph_with_a_fallback_op()
    features = graph_features(graph)
    assert sorted(features.kinds) == ["CONCATENATION", "CONV_2D.im2col", GENERIC]
    indices, X = features.kinds[GENERIC]
    assert list(indices) == [2] and X.shape == (1, len(KINDS[GENERIC].names))
    assert dict(zip(KINDS[GENERIC].names, X[0]))["output_elements"] == 8 * 8 * 8


def test_every_operator_the_runtime_runs_has_features_of_its_own():
    assert {kind_of(t) for t in KNOWN_OPS} == KNOWN_OPS - {"SQUEEZE", "SUB"}  # they run RESHAPE's and ADD's kernels
    assert kind_of("SQUEEZE") == "RESHAPE" and kind_of("SUB") == "ADD" and kind_of("SOME_FUTURE_OP") == GENERIC
    # Every fast path the runtime has (hwb_ops.h's HWB_PATHS) gets features of its own.
    header = (Path(__file__).parents[1] / "firmware_runner" / "runtime" / "hwb_ops.h").read_text()
    paths = re.search(r"#define HWB_PATHS\(X\)(.*)", header).group(1)
    fast_paths = set(re.findall(r"X\(\d+, (\w+)\)", paths)) - {"reference"}
    with_path = {path: {kind_of(t, path) for t in KNOWN_OPS} - {GENERIC} for path in fast_paths}
    assert all(len(kinds) == 1 and "." in kinds.pop() for kinds in with_path.values()), with_path
    for kind, features in KINDS.items():
        assert features.kind == kind and 1 <= features.n_linear <= len(features.names)
        assert len(set(features.names)) == len(features.names) and features.names[0] == "one"


# The byte-moving kernels (runtime/kernels/pad.c, transpose.c, concatenation.c, resize_nearest.c)
# re-done in Python loop for loop, recording each memmove and memset call and the loop trips
# newlib-nano's versions (what the firmware links) run for it; the copies are really made, so the
# re-implementation is checked against numpy too.


class Libc:
    """An output buffer written through memmove and memset, and the trips their loops ran."""

    def __init__(self, size: int):
        self.out = np.full(size, 99, dtype=np.int8)
        self.copy = dict.fromkeys(COPY, 0)
        self.fill = dict.fromkeys(FILL, 0)
        self.block_copy = dict.fromkeys(MEMCPY, 0)

    def memmove(self, dst: int, source: np.ndarray, src: int, n: int) -> None:
        self.out[dst:dst + n] = source[src:src + n]
        c = self.copy
        c["copy_calls"] += 1
        if n >= 16 and dst % 4 == 0 and src % 4 == 0:  # both word-aligned: 16-byte blocks, then words
            c["copy_word_calls"] += 1
            while n >= 16:
                c["copy_blocks"], n = c["copy_blocks"] + 1, n - 16
            c["copy_word_phases"] += n >= 4
            while n >= 4:
                c["copy_words"], n = c["copy_words"] + 1, n - 4
        c["copy_bytes"] += n

    def memcpy(self, dst: int, source: np.ndarray, src: int, n: int) -> None:
        self.out[dst:dst + n] = source[src:src + n]
        c = self.block_copy
        c["memcpy_calls"] += 1
        if (dst % 4 or src % 4) and n < 8:  # short and unaligned: byte by byte, the last 3 unrolled
            c["memcpy_byte_calls"] += 1
            c["memcpy_byte_loops"] += max(n - 3, 0)
            return
        c["memcpy_word_calls"] += 1
        if dst % 4 and src % 4:  # neither aligned: bytes until the destination is
            c["memcpy_realigned"] += 1
            n -= 4 - dst % 4
        while n >= 64:
            c["memcpy_blocks64"], n = c["memcpy_blocks64"] + 1, n - 64
        while n >= 16:
            c["memcpy_blocks16"], n = c["memcpy_blocks16"] + 1, n - 16
        while n >= 4:
            c["memcpy_words"], n = c["memcpy_words"] + 1, n - 4
        c["memcpy_tails"] += n > 0

    def memset(self, dst: int, value: int, n: int) -> None:
        self.out[dst:dst + n] = value
        f = self.fill
        f["fill_calls"] += 1
        f["fill_unaligned_calls"] += n > 0 and dst % 4 != 0
        while n and dst % 4:
            f["fill_head_bytes"], n, dst = f["fill_head_bytes"] + 1, n - 1, dst + 1
        f["fill_word_phases"] += n >= 4
        f["fill_block_phases"] += n >= 16
        while n >= 16:
            f["fill_blocks"], n = f["fill_blocks"] + 1, n - 16
        while n >= 4:
            f["fill_words"], n = f["fill_words"] + 1, n - 4
        f["fill_tail_bytes"] += n


def four_d(shape):
    return (1,) * (4 - len(shape)) + tuple(shape)


def walk_rows(size, loops: dict):
    """pad.c's and transpose.c's walk over the innermost rows of a 4-D output, counting the trips of
    the two loops around the innermost one."""
    for i0 in range(size[0]):
        for i1 in range(size[1]):
            loops["outer_rows"] += 1
            for i2 in range(size[2]):
                loops["rows"] += 1
                yield i0, i1, i2


def pad_kernel(x: np.ndarray, paddings, value: int) -> tuple[Libc, dict]:
    lead = 4 - x.ndim
    before = [0] * lead + [b for b, _ in paddings]
    after = [0] * lead + [a for _, a in paddings]
    d = four_d(x.shape)
    o = [n + b + a for n, b, a in zip(d, before, after)]
    flat, libc, loops = x.ravel(), Libc(int(np.prod(o))), {"outer_rows": 0, "rows": 0}
    at = 0
    for i in walk_rows(o, loops):
        j = [i[k] - before[k] for k in range(3)]
        if all(0 <= j[k] < d[k] for k in range(3)):
            row = ((j[0] * d[1] + j[1]) * d[2] + j[2]) * d[3]
            libc.memset(at, value, before[3])
            libc.memmove(at + before[3], flat, row, d[3])
            libc.memset(at + before[3] + d[3], value, after[3])
        else:
            libc.memset(at, value, o[3])
        at += o[3]
    return libc, loops


def transpose_kernel(x: np.ndarray, perm) -> tuple[Libc, dict]:
    rank = x.ndim
    in_stride = [int(np.prod(x.shape[d + 1:])) for d in range(rank)]
    size = four_d([x.shape[p] for p in perm])
    step = [0] * (4 - rank) + [in_stride[p] for p in perm]
    flat, libc, loops = x.ravel(), Libc(x.size), {"outer_rows": 0, "rows": 0, "gathered": 0}
    at = 0
    for i0, i1, i2 in walk_rows(size, loops):
        base = i0 * step[0] + i1 * step[1] + i2 * step[2]
        if step[3] == 1:
            libc.memmove(at, flat, base, size[3])
            at += size[3]
        else:
            for i3 in range(size[3]):
                libc.out[at] = flat[base + i3 * step[3]]
                at += 1
                loops["gathered"] += 1
    return libc, loops


def concatenation_kernel(xs: list[np.ndarray], axis: int) -> tuple[Libc, dict]:
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    libc, loops = Libc(int(np.prod(shape))), {"inputs": len(xs), "input_dims": len(xs) * len(shape), "outer": 0}
    at = 0
    for o in range(outer):
        loops["outer"] += 1
        for x in xs:
            chunk = x.shape[axis] * inner
            libc.memmove(at, x.ravel(), o * chunk, chunk)
            at += chunk
    return libc, loops


def nearest(i: int, in_size: int, out_size: int, align: bool, half: bool, loops: dict) -> int:
    """resize_nearest.c's nearest(), float32 for float, counting the paths it takes."""
    f32 = np.float32
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
        loops["aligned_scale"] += 1
    else:
        scale = f32(in_size) / f32(out_size)
    v = (f32(i) + f32(0.5 if half else 0.0)) * scale
    if not v < f32(in_size):
        index = in_size - 1
    else:
        index = int(v)
        if align:
            loops["rounding_checks"] += 1
            if index < 1 << 23 and v >= f32(index) + f32(0.5):
                index += 1
        index = min(index, in_size - 1)
    if half:
        loops["half_pixel_clamps"] += 1
        index = max(index, 0)
    return index


def resize_kernel(x: np.ndarray, out_h: int, out_w: int, align: bool, half: bool) -> tuple[Libc, dict]:
    batches, in_h, in_w, depth = x.shape
    libc = Libc(batches * out_h * out_w * depth)
    loops = {"rows": 0, "pixels": 0, "aligned_scale": 0, "rounding_checks": 0, "half_pixel_clamps": 0}
    at = 0
    for b in range(batches):
        for oy in range(out_h):
            loops["rows"] += 1
            iy = nearest(oy, in_h, out_h, align, half, loops)
            for ox in range(out_w):
                loops["pixels"] += 1
                ix = nearest(ox, in_w, out_w, align, half, loops)
                libc.memmove(at, x.ravel(), ((b * in_h + iy) * in_w + ix) * depth, depth)
                at += depth
    return libc, loops


def features_of(graph: Graph) -> dict:
    op = graph.ops[0]
    kind = op_kind(graph, op)
    (indices, X), = graph_features(graph).kinds.values()
    return dict(zip(KINDS[kind].names, X[0]))


def assert_counts(row: dict, libc: Libc, loops: dict) -> None:
    expected = {**loops, **(libc.copy if "copy_calls" in row else {}), **(libc.fill if "fill_calls" in row else {}),
                **(libc.block_copy if "memcpy_calls" in row else {})}
    assert {k: row[k] for k in expected} == expected


def one_op_graph(op_type: str, inputs, output_shape, options=None, constants=()) -> Graph:
    """One op reading activations of the given shapes (and int32 constants), writing output_shape."""
    tensors = [_tensor(f"x{i}", shape) for i, shape in enumerate(inputs)]
    for data in constants:
        tensors.append(Tensor(f"c{len(tensors)}", np.shape(data), "int32", None, np.asarray(data, dtype=np.int32)))
    tensors.append(_tensor("y", output_shape))
    return Graph(tensors, [Op(op_type, tuple(range(len(tensors) - 1)), (len(tensors) - 1,), options or {})],
                 tuple(range(len(inputs))), (len(tensors) - 1,), op_type.lower())


@pytest.mark.parametrize("shape, paddings", [
    ((1, 5, 6, 3), [(0, 0), (1, 2), (2, 1), (0, 0)]),  # spatial padding, 3-byte rows: bytewise
    ((1, 4, 3, 20), [(0, 0), (1, 1), (1, 1), (0, 0)]),  # 20-byte rows, aligned and not
    ((1, 3, 4, 17), [(0, 0), (0, 1), (3, 0), (2, 5)]),  # channel padding: memsets at every alignment
    ((2, 3, 33), [(1, 0), (0, 2), (7, 9)]),  # rank 3
    ((40,), [(5, 19)]),  # rank 1: one row
])
def test_pad_features_count_the_kernels_calls_and_loop_trips(shape, paddings):
    x = np.random.default_rng(0).integers(-128, 128, size=shape).astype(np.int8)
    out_shape = tuple(n + b + a for n, (b, a) in zip(shape, paddings))
    libc, loops = pad_kernel(x, paddings, value=-5)
    assert np.array_equal(libc.out.reshape(out_shape), np.pad(x, paddings, constant_values=-5))
    assert_counts(features_of(one_op_graph("PAD", [shape], out_shape, constants=[paddings])), libc, loops)


@pytest.mark.parametrize("shape, perm", [
    ((1, 6, 5, 20), (0, 2, 1, 3)),  # last dim stays: a memmove per row
    ((1, 6, 5, 3), (0, 2, 1, 3)),
    ((1, 6, 5, 7), (0, 3, 1, 2)),  # every byte gathered
    ((3, 18, 5), (1, 0, 2)),
    ((9, 4), (1, 0)),
])
def test_transpose_features_count_the_kernels_calls_and_loop_trips(shape, perm):
    x = np.random.default_rng(1).integers(-128, 128, size=shape).astype(np.int8)
    libc, loops = transpose_kernel(x, perm)
    assert np.array_equal(libc.out, np.transpose(x, perm).ravel())
    out_shape = tuple(shape[p] for p in perm)
    assert_counts(features_of(one_op_graph("TRANSPOSE", [shape], out_shape, constants=[perm])), libc, loops)


@pytest.mark.parametrize("shapes, axis", [
    ([(1, 4, 5, 3), (1, 4, 5, 6)], 3),  # small chunks per pixel
    ([(1, 4, 5, 17), (1, 4, 5, 20), (1, 4, 5, 3)], 3),  # offsets drift through every alignment
    ([(1, 2, 5, 8), (1, 3, 5, 8)], 1),  # one big chunk per input
    ([(6, 18), (6, 2), (6, 32)], 1),
])
def test_concatenation_features_count_the_kernels_calls_and_loop_trips(shapes, axis):
    rng = np.random.default_rng(2)
    xs = [rng.integers(-128, 128, size=s).astype(np.int8) for s in shapes]
    libc, loops = concatenation_kernel(xs, axis)
    joined = np.concatenate(xs, axis=axis)
    assert np.array_equal(libc.out, joined.ravel())
    assert_counts(features_of(one_op_graph("CONCATENATION", shapes, joined.shape, {"axis": axis})), libc, loops)


@pytest.mark.parametrize("in_hw, out_hw, align, half", [
    ((4, 5), (8, 10), False, False),
    ((5, 7), (3, 4), False, True),
    ((5, 7), (9, 13), True, False),
    ((3, 3), (1, 7), True, False),  # one output row: align_corners' scale only along the width
    ((6, 2), (13, 5), False, True),
])
@pytest.mark.parametrize("depth", [3, 18])
def test_resize_nearest_features_count_the_kernels_calls_and_loop_trips(in_hw, out_hw, align, half, depth):
    x = np.random.default_rng(3).integers(-128, 128, size=(2, *in_hw, depth)).astype(np.int8)
    libc, loops = resize_kernel(x, *out_hw, align, half)
    if not align and not half and all(o % i == 0 for o, i in zip(out_hw, in_hw)):  # integer factors: repeats
        factors = [o // i for o, i in zip(out_hw, in_hw)]
        assert np.array_equal(libc.out, x.repeat(factors[0], axis=1).repeat(factors[1], axis=2).ravel())
    graph = one_op_graph("RESIZE_NEAREST_NEIGHBOR", [x.shape], (2, *out_hw, depth),
                         {"align_corners": align, "half_pixel_centers": half}, constants=[out_hw])
    assert_counts(features_of(graph), libc, loops)


# The fast paths (runtime/kernels/conv2d.c, depthwise_conv2d.c, fully_connected.c) re-done in Python
# loop for loop, counting each loop's trips; im2col's gather really gathers, checked against numpy.


def window_range(o: int, stride: int, pad: int, size: int, filter_size: int) -> tuple[int, int, int]:
    """A window's origin and the filter taps [begin, end) inside the input, as the kernels compute them."""
    origin = o * stride - pad
    return origin, max(-origin, 0), min(size - origin, filter_size)


def tflite_padding(size: int, filter_size: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) as TFLite computes them."""
    out = -(-size // stride) if padding == "SAME" else (size - filter_size) // stride + 1
    return out, max((out - 1) * stride + filter_size - size, 0) // 2


def matrix_multiply(loops: dict, out_c: int, groups: int, relu: bool) -> None:
    loops["pixel_pairs"] += 1
    for first in range(0, out_c, 16):
        loops["channel_chunks"] += 1
        count, k = min(16, out_c - first), 0
        while k + 1 < count:
            loops["channel_pairs"] += 1
            loops["pair_words"] += groups
            k += 2
        if k < count:
            loops["single_channels"] += 1
            loops["single_words"] += groups
        loops["requantized"] += 2 * count
        loops["requantized_unclipped"] += 2 * count * (not relu)  # no negative result cut: the clamp's long branch


def conv_fast_kernel(x: np.ndarray, f_h: int, f_w: int, out_c: int, stride: int, padding: str, relu: bool,
                     zero_point: int = -3):
    """conv2d.c's fast path: the window of every pixel gathered (im2col) or the pixel read (pointwise),
    packed, and multiplied two pixels at a time."""
    n, in_h, in_w, in_c = x.shape
    out_h, pad_top = tflite_padding(in_h, f_h, stride, padding)
    out_w, pad_left = tflite_padding(in_w, f_w, stride, padding)
    pointwise = f_h == f_w == 1
    k = f_h * f_w * in_c
    kp = -(-k // 4) * 4
    loops = dict.fromkeys(["one", "rows", "pixels", "packed_words", "pixel_pairs", "channel_chunks", "channel_pairs",
                           "pair_words", "single_channels", "single_words", "requantized", "odd_pixel_words",
                           "requantized_unclipped"], 0)
    loops.update(dict.fromkeys(["partial_words", "partial_bytes"] if pointwise else
                               ["window_rows", "rows_outside", "zero_bytes"], 0))
    loops["one"] = 1
    libc, flat, row, pending = Libc(kp), x.ravel(), f_w * in_c, False
    for b in range(n):
        for oy in range(out_h):
            loops["rows"] += 1
            y0, _, _ = window_range(oy, stride, pad_top, in_h, f_h)
            for ox in range(out_w):
                loops["pixels"] += 1
                x0, fx_begin, fx_end = window_range(ox, stride, pad_left, in_w, f_w)
                if pointwise:
                    whole = in_c - in_c % 4
                    loops["packed_words"] += whole // 4
                    if whole != kp:
                        loops["partial_words"] += 1
                        loops["partial_bytes"] += in_c - whole
                else:
                    for fy in range(f_h):
                        loops["window_rows"] += 1
                        if not 0 <= y0 + fy < in_h:
                            loops["rows_outside"] += 1
                            libc.memset(fy * row, zero_point, row)
                            continue
                        libc.memset(fy * row, zero_point, fx_begin * in_c)
                        source = ((b * in_h + y0 + fy) * in_w + x0 + fx_begin) * in_c
                        libc.memcpy(fy * row + fx_begin * in_c, flat, source, (fx_end - fx_begin) * in_c)
                        libc.memset(fy * row + fx_end * in_c, zero_point, (f_w - fx_end) * in_c)
                    loops["zero_bytes"] += kp - k
                    padded = np.pad(x[b], [(pad_top, f_h), (pad_left, f_w), (0, 0)], constant_values=zero_point)
                    window = padded[oy * stride:oy * stride + f_h, ox * stride:ox * stride + f_w]
                    assert np.array_equal(libc.out[:k], window.ravel())
                    loops["packed_words"] += kp // 4
                if pending:
                    matrix_multiply(loops, out_c, kp // 4, relu)
                pending = not pending
    if pending:  # the odd pixel out, copied beside itself
        loops["odd_pixel_words"] += kp // 4
        matrix_multiply(loops, out_c, kp // 4, relu)
    return libc, loops


@pytest.mark.parametrize("size, cin, cout, kernel, padding", [
    ((8, 8), 3, 4, 3, "SAME"),  # an odd number of pixels' pairs, K = 27 (zero bytes to Kp)
    ((7, 5), 5, 19, 3, "SAME"),  # an odd pixel, a chunk of 16 channels and 3 more (one alone)
    ((9, 10), 16, 8, 5, "SAME"),  # rows outside the input, copies of every length
    ((10, 4), 1, 33, (10, 4), "VALID"),  # kws's first layer shape: copies of a few bytes
    ((9, 9), 6, 12, 3, "VALID"),
    ((11, 6), 8, 6, 3, "SAME"),
    ((6, 6), 7, 5, 1, "SAME"),  # pointwise, 7 channels: a partial word
    ((7, 9), 16, 21, 1, "VALID"),
])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_fast_path_features_count_the_kernels_loop_trips(size, cin, cout, kernel, padding, stride):
    f_h, f_w = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x = np.random.default_rng(4).integers(-128, 128, size=(1, *size, cin)).astype(np.int8)
    out_h, out_w = (tflite_padding(n, f, stride, padding)[0] for n, f in zip(size, (f_h, f_w)))
    graph = Graph([_tensor("x", x.shape), _tensor("w", (cout, f_h, f_w, cin), constant=True),
                   _tensor("y", (1, out_h, out_w, cout))],
                  [Op("CONV_2D", (0, 1), (2,), {"padding": padding, "stride_h": stride, "stride_w": stride,
                                                "fused_activation_function": "RELU" if stride == 2 else "NONE"})],
                  (0,), (2,), "conv")
    assert op_kind(graph, graph.ops[0]) == ("CONV_2D.pointwise" if f_h == f_w == 1 else "CONV_2D.im2col")
    libc, loops = conv_fast_kernel(x, f_h, f_w, cout, stride, padding, relu=stride == 2)
    assert_counts(features_of(graph), libc, loops)


def group_any(loops: dict, kind: str, count: int, f_h: int, f_w: int, y: tuple[int, int], x: tuple[int, int]) -> None:
    """depthwise_conv2d.c's group_any: per filter row, taps in the padding or inside (a word or bytes)."""
    loops[f"{kind}_groups"] += 1
    for fy in range(f_h):
        loops[f"{kind}_group_rows"] += 1
        fx = 0
        if y[0] <= fy < y[1]:
            loops[f"{kind}_group_rows_inside"] += 1
            for fx in range(x[0], x[1]):
                loops[f"{kind}_group_taps_inside"] += 1
                if count < 4:
                    loops["partial_bytes"] += count
            loops[f"{kind}_group_taps_padding"] += x[0]
            fx = x[1]
        loops[f"{kind}_group_taps_padding"] += f_w - fx


def depthwise_fast_loops(shape, f_h: int, f_w: int, stride: int, padding: str) -> dict:
    n, in_h, in_w, channels = shape
    out_h, pad_top = tflite_padding(in_h, f_h, stride, padding)
    out_w, pad_left = tflite_padding(in_w, f_w, stride, padding)
    loops = dict.fromkeys(KINDS["DEPTHWISE_CONV_2D.dw"].names[:KINDS["DEPTHWISE_CONV_2D.dw"].n_linear], 0)
    loops["one"] = 1
    for _ in range(n):
        for oy in range(out_h):
            loops["rows"] += 1
            _, *y = window_range(oy, stride, pad_top, in_h, f_h)
            for ox in range(out_w):
                loops["pixels"] += 1
                _, *x = window_range(ox, stride, pad_left, in_w, f_w)
                inside = y == [0, f_h] and x == [0, f_w]
                for first in range(0, channels, 32):
                    loops["channel_chunks"] += 1
                    count = min(32, channels - first)
                    for c in range(first, first + count, 4):
                        if c + 4 > channels:
                            group_any(loops, "partial", channels - c, f_h, f_w, y, x)
                        elif inside and (f_h, f_w) == (3, 3):  # unrolled
                            loops["inside_3x3_groups"] += 1
                        elif inside:  # one loop over the taps
                            loops["inside_groups"] += 1
                            loops["inside_group_rows"] += f_h
                            loops["inside_group_taps"] += f_h * f_w
                        else:
                            group_any(loops, "border", 4, f_h, f_w, y, x)
                    loops["requantized"] += count
                    loops["requantized_unclipped"] += count  # no fused activation, zero point 0
    return loops


@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((1, 8, 8, 8), (3, 3), 1, "SAME"),
    ((1, 9, 7, 37), (3, 3), 2, "SAME"),  # two chunks, a partial group of 1
    ((1, 6, 6, 6), (3, 3), 1, "VALID"),
    ((1, 10, 9, 12), (5, 5), 2, "SAME"),
    ((1, 30, 1, 10), (3, 1), 1, "VALID"),  # sww's 1-D filters
    ((2, 7, 8, 5), (7, 7), 1, "SAME"),  # every window at the border, a full group and a partial one
])
def test_depthwise_fast_path_features_count_the_kernels_loop_trips(shape, kernel, stride, padding):
    out = [tflite_padding(n, f, stride, padding)[0] for n, f in zip(shape[1:3], kernel)]
    graph = Graph([_tensor("x", shape), _tensor("w", (1, *kernel, shape[3]), constant=True),
                   _tensor("y", (shape[0], *out, shape[3]))],
                  [Op("DEPTHWISE_CONV_2D", (0, 1), (2,), {"padding": padding, "stride_h": stride, "stride_w": stride,
                                                          "depth_multiplier": 1})], (0,), (2,), "dw")
    path = "dw_3x3" if kernel == (3, 3) else "dw_general"
    assert kernel_path(graph, graph.ops[0]).name == path and op_kind(graph, graph.ops[0]) == "DEPTHWISE_CONV_2D.dw"
    assert_counts(features_of(graph), Libc(0), depthwise_fast_loops(shape, *kernel, stride, padding))


@pytest.mark.parametrize("batches, depth, units", [(1, 64, 12), (1, 37, 10), (3, 5, 3), (2, 3, 9), (1, 640, 128)])
def test_fully_connected_dot_features_count_the_kernels_loop_trips(batches, depth, units):
    loops = dict.fromkeys(KINDS["FULLY_CONNECTED.dot"].names[:KINDS["FULLY_CONNECTED.dot"].n_linear], 0)
    loops["one"] = 1
    whole = depth // 4
    for _ in range(batches):  # fully_connected.c's fast()
        loops["batches"] += 1
        loops["partial_bytes"] += depth - 4 * whole
        u = 0
        while u + 3 < units:
            loops["blocks"] += 1
            loops["block_words"] += whole
            loops["outputs"] += 4
            loops["outputs_unclipped"] += 4  # no fused activation, zero point 0
            loops["partial_words"] += 4 * (depth % 4 > 0)
            u += 4
        for _ in range(u, units):
            loops["single_units"] += 1
            loops["single_words"] += whole
            loops["outputs"] += 1
            loops["outputs_unclipped"] += 1
            loops["partial_words"] += depth % 4 > 0
    graph = Graph([_tensor("x", (batches, depth)), _tensor("w", (units, depth), constant=True),
                   _tensor("y", (batches, units))], [Op("FULLY_CONNECTED", (0, 1), (2,), {})], (0,), (2,), "fc")
    assert op_kind(graph, graph.ops[0]) == "FULLY_CONNECTED.dot"
    assert_counts(features_of(graph), Libc(0), loops)


def test_copy_and_fill_trips_sum_over_calls():
    calls = [(n, dst, src) for n in (0, 3, 4, 7, 8, 15, 16, 17, 31, 36, 64, 100, 131)
             for dst in (0, 1, 3, 4, 6) for src in (0, 1, 2, 8)]
    libc = Libc(200)
    for n, dst, src in calls:
        libc.memmove(dst, np.zeros(200, np.int8), src, n)
        libc.memset(dst, 0, n)
        libc.memcpy(dst, np.zeros(200, np.int8), src, n)
    n, dst, src = (np.array(c) for c in zip(*calls))
    assert dict(zip(COPY, copy_trips(n, dst, src))) == libc.copy
    assert dict(zip(FILL, fill_trips(n, dst))) == libc.fill
    assert dict(zip(MEMCPY, memcpy_trips(n, dst, src))) == libc.block_copy


def test_reshape_copies_only_what_the_arena_planner_cannot_alias():
    aliased = one_op_graph("RESHAPE", [(1, 4, 4, 5)], (1, 80))
    assert features_of(aliased)["copy_calls"] == 0
    constant = Graph([_tensor("c", (4, 20), constant=True), _tensor("y", (1, 80))], [Op("RESHAPE", (0,), (1,))], (),
                     (1,), "constant")
    row = features_of(constant)
    assert (row["copy_calls"], row["copy_word_calls"], row["copy_blocks"]) == (1, 1, 80 // 16)


def test_mean_features_are_output_elements_times_reduced_elements_for_any_axes():
    for in_shape, out_shape in [((1, 6, 5, 8), (1, 1, 1, 8)), ((1, 6, 5, 8), (1, 8)), ((1, 6, 5, 8), (1, 6, 1, 8)),
                                ((2, 6, 5, 8), (2, 6, 5, 1))]:
        row = features_of(one_op_graph("MEAN", [in_shape], out_shape, constants=[[1]]))
        reduced = np.prod(in_shape) // np.prod(out_shape)
        assert (row["outputs"], row["elements"]) == (np.prod(out_shape), np.prod(out_shape) * reduced)


def quantized_graph(op_type: str, scales, zero_points, options=None, shape=(1, 4, 4, 3)) -> Graph:
    """One op on int8 tensors of the given (input..., output) scales and zero points."""
    tensors = [Tensor(f"t{i}", shape, "int8", Quantization(np.array([s], np.float32), np.array([z])))
               for i, (s, z) in enumerate(zip(scales, zero_points))]
    n = len(tensors) - 1
    return Graph(tensors, [Op(op_type, tuple(range(n)), (n,), options or {})], tuple(range(n)), (n,), op_type)


def lowered_fields(graph: Graph) -> np.ndarray:
    from firmware_runner.compiler.lowering import LOWERINGS

    op = graph.ops[0]
    return np.frombuffer(LOWERINGS[op.type](graph, op).params, dtype="<i4")


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.99, 1.0, 1.7, 40.0])
def test_requantizing_features_take_the_plans_shift_direction(ratio):
    """The kernels requantize through a branch on the multiplier's shift (left for a scale ratio of
    1 and more, right below it): the features must see the direction the plan compiler chose."""
    relu = quantized_graph("RELU", [0.1 * ratio, 0.1], [-128, -128])
    shift = lowered_fields(relu)[1]  # relu_params: multiplier, shift, ...
    assert features_of(relu)["right_shifted"] == (relu.tensors[1].size if shift <= 0 else 0)
    mul = quantized_graph("MUL", [0.2 * ratio, 0.5, 0.1], [3, -128, 0])
    shift = lowered_fields(mul)[1]  # mul_params: multiplier, shift, ...
    assert features_of(mul)["right_shifted"] == (mul.tensors[2].size if shift <= 0 else 0)
    swish = quantized_graph("HARD_SWISH", [0.0117 * ratio, 0.2], [0, -100])
    exponent = lowered_fields(swish)[1]  # hard_swish_params: reluish multiplier, reluish exponent, ...
    row = features_of(swish)
    assert (row["left_shifted"] > 0, row["right_shifted"] > 0) == (exponent > 0, exponent < 0)


def test_values_below_the_zero_point_are_estimated_from_where_it_sits():
    relu_output = quantized_graph("RELU", [0.1, 0.1], [-128, -128])  # a ReLU's output never lies below its zp
    assert features_of(relu_output)["below_zero_point"] == 0
    centred = quantized_graph("ADD", [0.1, 0.1, 0.1], [0, 127, -128])
    n = centred.tensors[2].size
    row = features_of(centred)
    assert row["inputs_below_zero_point"] == n * (128 + 255) / 256 and row["output_below_zero_point"] == 0
    product = quantized_graph("MUL", [0.1, 0.1, 0.1], [0, -128, 0])
    assert features_of(product)["negative_products"] == n / 2  # half of one input's values, none of the other's


# ------------------------------------------------------------------------------ regressors


def test_compiled_trees_predict_exactly_what_scikit_learn_predicts():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    rng = np.random.default_rng(3)
    X = rng.random((300, 6)) * 50
    y = np.sin(X[:, 0]) + X[:, 2] * (X[:, 4] > 20)
    boost = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0).fit(X, y)
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, y)
    X_new = rng.random((200, 6)) * 70  # beyond the training range too
    np.testing.assert_allclose(CompiledTrees.from_gradient_boosting(boost, 6).predict(X_new), boost.predict(X_new),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(CompiledTrees.from_forest(forest, 6).predict(X_new), forest.predict(X_new),
                               rtol=1e-12, atol=1e-12)


def test_loop_count_regressor_recovers_costs_per_loop_trip():
    rng = np.random.default_rng(4)
    X = np.column_stack([np.ones(200), rng.integers(1, 500, 200), rng.integers(1, 10**6, 200), rng.random(200)])
    y = X[:, :3] @ np.array([900.0, 37.0, 6.0])
    regressor = LoopCountRegressor(n_linear=3).fit(X, y)
    np.testing.assert_allclose(regressor.coef_, [900.0, 37.0, 6.0], rtol=1e-6)
    big = np.array([[1.0, 10_000, 10**8, 0.0]])  # far past anything seen: a linear cost model extrapolates
    assert regressor.predict(big)[0] == pytest.approx(900 + 370_000 + 6 * 10**8, rel=1e-6)


def test_loop_count_regressor_costs_only_the_loops_it_is_given():
    """A few layers cannot tell many minor loops apart: given only the principal loops, the costs of
    those are recovered (the minor ones folded in) and the others cost nothing, in a saved model too."""
    rng = np.random.default_rng(5)
    X = np.column_stack([np.ones(12), rng.integers(100, 500, 12), rng.integers(0, 3, 12), rng.integers(1, 10**5, 12)])
    y = X[:, :4] @ np.array([900.0, 37.0, 1.0, 6.0])
    regressor = LoopCountRegressor(n_linear=4, loops=(0, 1, 3)).fit(X, y)
    assert regressor.coef_[2] == 0.0
    np.testing.assert_allclose(regressor.coef_[[0, 1, 3]], [900.0, 37.0, 6.0], rtol=1e-3)
    restored = LoopCountRegressor.from_state(*json_round_trip(regressor.to_state()))
    assert restored.loops == [0, 1, 3] and np.array_equal(restored.predict(X), regressor.predict(X))
    params, arrays = regressor.to_state()
    with pytest.raises(ValueError, match="outside"):
        LoopCountRegressor.from_state({**params, "hyperparameters": {**params["hyperparameters"], "loops": [4]}}, arrays)


def json_round_trip(state):
    params, arrays = state
    return json.loads(json.dumps(params)), arrays


def test_macs_baseline_fits_a_line_and_minimises_percentage_error():
    baseline = MacsBaseline().fit([1e3, 1e4, 1e5, 1e6], [2e4, 1.1e5, 1.01e6, 1.0e7])
    assert baseline.intercept_ == pytest.approx(1e4, rel=1e-6) and baseline.slope_ == pytest.approx(10, rel=1e-6)
    macs = np.array([1e3, 1e4, 1e5, 1e6, 2e6])
    totals = np.array([2e4, 1.1e5, 1.01e6, 1.0e7, 5e7])  # one outlier: least squares would chase it
    fitted = MacsBaseline().fit(macs, totals)
    assert accuracy(totals, fitted.predict(macs))["mape"] < accuracy(totals, 2e4 + 24.0 * macs)["mape"]


def test_cross_validation_never_splits_a_model():
    groups = np.repeat(np.arange(12), np.arange(1, 13))  # 12 models with 1..12 layers
    folds = grouped_folds(groups, 5)
    assert len(folds) == 5
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([test for _, test in folds])) == list(range(len(groups)))


# ------------------------------------------------------------------------------ fitting on board counts


def test_the_dataset_holds_verified_counts_of_every_op(dataset):
    assert len(dataset) == N_MODELS and dataset.unit == "instructions" and dataset.board == BOARD
    for graph, counts, total in zip(dataset.graphs, dataset.layer_counts, dataset.totals):
        assert counts.shape == (len(graph.ops),) and (counts > 0).all() and total > counts.sum()


def test_counts_of_different_runtime_builds_are_never_mixed(collected, tmp_path):
    db = copy_db(collected[0], tmp_path / "two-runtimes.db")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE measurements SET runtime_hash = 'older', created = '2000-01-01 00:00:00' "
                  "WHERE id IN (SELECT id FROM measurements ORDER BY id LIMIT 12)")
    latest = load_dataset(db, BOARD)
    assert len(latest) == N_MODELS - 12 and latest.runtime_hash != "older"
    assert latest.ignored == {"another runtime": 12}
    older = load_dataset(db, BOARD, runtime_hash="older")
    assert len(older) == 12 and not set(older.sha256) & set(latest.sha256)
    with pytest.raises(HwbenchError, match="no verified measurements .* with runtime nope"):
        load_dataset(db, BOARD, runtime_hash="nope")


def test_learned_model_predicts_held_out_models_and_beats_the_macs_baseline(fitted):
    learned, baseline = fitted.metrics["learned"], fitted.metrics["baseline"]
    assert learned["n"] == N_MODELS - N_TRAIN
    assert learned["within_10"] == 1.0 and learned["mape"] < 3.0
    assert learned["mape"] < baseline["mape"] and learned["r2"] > baseline["r2"]
    model = fitted.model
    assert model.n_models_ == N_TRAIN and model.n_layers_ == sum(len(g.ops) for g in fitted.train.graphs)
    for kind, report in model.kind_reports_.items():
        assert report.chosen in report.cv_error and set(report.cv_error) == set(model.candidates)
        best = min(report.cv_error.values())
        # The simplest candidate within 5%, or 0.05% of a model's count, of the best.
        assert report.chosen == next(c for c in model.candidates if report.cv_error[c] <= best * 1.05 + NEGLIGIBLE_ERROR)


def test_model_prediction_is_the_sum_of_layers_plus_the_fitted_overhead(fitted):
    model, train = fitted.model, fitted.train
    # The interpreter's own cost is a + b × ops exactly; the fit finds it from the totals.
    residual = train.totals - np.array([c.sum() for c in train.layer_counts])
    ops = np.array([len(g.ops) for g in train.graphs])
    a, b = model.overhead_
    assert np.abs(a + b * ops - residual).max() < 2 and b > 0
    graph = fitted.test.graphs[0]
    prediction = model.predict(graph)
    assert isinstance(prediction, float)
    assert prediction == pytest.approx(model.predict_layers(graph).sum() + a + b * len(graph.ops))
    assert model.predict(graph) == prediction  # the second call uses the cached features


def test_a_kind_without_training_data_falls_back_to_the_generic_regressor(fitted):
    """Trained on models without a CONCATENATION, the model predicts one with its GENERIC regressor."""
    train = fitted.train.subset([i for i, g in enumerate(fitted.train.graphs) if "CONCATENATION" not in g.op_counts()])
    model = LatencyModel(candidates=("loop-linear",), min_layers=5, cv_folds=3).fit(
        train.graphs, train.totals, train.layer_counts)
    graph = graph_with_a_fallback_op()
    assert model.fallback_kinds(graph) == {"CONCATENATION", "SOME_FUTURE_OP"}
    layers = model.predict_layers(graph)
    assert np.isfinite(layers).all() and (layers > 0).all()


@pytest.mark.parametrize("name", ["kws", "ad"])
def test_mlperf_tiny_model_is_predicted_within_ten_percent(name, fitted, mlperf_model):
    """Trained on a few dozen small random models only, yet a real model (larger than most of them) is
    predicted within ±10% of what the board counts; the MACs line is further off."""
    from firmware_runner.backends.qemu import QemuBackend
    from firmware_runner.collect import measure
    from firmware_runner.firmware.build import build_firmware

    board = get_board(BOARD)
    path = mlperf_model(name)
    measured = measure(path, board, build_firmware(board), QemuBackend(board), repeats=1)
    assert measured.status == "measured" and measured.verified
    graph = read_tflite(path)
    predicted = fitted.model.predict(graph)
    assert abs(predicted - measured.count) / measured.count < 0.10
    assert abs(predicted - measured.count) < abs(fitted.baseline.predict_graph(graph) - measured.count)


# ------------------------------------------------------------------------------ artifact


@pytest.fixture(scope="module")
def fitted_each_regressor(dataset):
    """Per candidate regressor, a model whose every kind uses it, fitted on the first N_TRAIN models."""
    train = dataset.subset(range(N_TRAIN))
    return {name: LatencyModel(candidates=(name,), min_layers=5, cv_folds=2).fit(
        train.graphs, train.totals, train.layer_counts) for name in CANDIDATES}


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array, allow_pickle=allow_pickle)
    return stream.getvalue()


def with_header(members: dict[str, bytes], change) -> dict[str, bytes]:
    header = json.loads(members["header.json"])
    change(header)
    return {**members, "header.json": json.dumps(header).encode()}


def test_artifact_keeps_the_metadata(fitted, artifact_file):
    artifact = load_artifact(artifact_file, board=BOARD)
    meta = artifact.metadata
    for key in ("board", "unit", "runtime_hash", "feature_schema", "n_models", "n_layers", "held_out",
                "hwbench_version", "baseline", "clock_hz", "regressors", "per_operator"):
        assert key in meta, key
    assert meta["n_models"] == N_TRAIN and meta["held_out"]["learned"]["n"] == N_MODELS - N_TRAIN
    assert meta["runtime_hash"] == fitted.train.runtime_hash
    assert artifact.baseline.slope_ == fitted.baseline.slope_
    assert artifact.baseline.intercept_ == fitted.baseline.intercept_
    assert artifact.runtime_warning(meta["runtime_hash"]) is None
    assert "runtime" in artifact.runtime_warning("0123456789abcdef")


@pytest.mark.parametrize("regressor", CANDIDATES + ("chosen per kind",))
def test_a_loaded_model_predicts_bit_for_bit_what_the_saved_one_did(regressor, fitted, fitted_each_regressor, tmp_path):
    model = fitted_each_regressor.get(regressor, fitted.model)
    if regressor in CANDIDATES:
        assert {type(r).name for r in model.regressors_.values()} == {regressor}
    path = tmp_path / "m.latmodel"
    save_artifact(model, fitted.metadata(), path)
    loaded = LatencyModel.load(path, board=BOARD)
    assert loaded is not model and loaded.kind_reports_ == model.kind_reports_
    assert (loaded.n_models_, loaded.n_layers_, loaded.layers_per_kind_) == \
        (model.n_models_, model.n_layers_, model.layers_per_kind_)
    for graph in fitted.train.graphs + fitted.test.graphs + [graph_with_a_fallback_op()]:
        assert np.array_equal(loaded.predict_layers(graph), model.predict_layers(graph)), graph.name
        assert loaded.predict(graph) == model.predict(graph)
        assert loaded.overhead(graph) == model.overhead(graph)
        assert loaded.fallback_kinds(graph) == model.fallback_kinds(graph)


def test_the_artifact_is_json_and_plain_arrays_that_numpy_reads_without_pickle(fitted_each_regressor, fitted,
                                                                              tmp_path):
    path = tmp_path / "forest.latmodel"
    model = fitted_each_regressor["loop-linear+boost"]
    save_artifact(model, fitted.metadata(), path)
    members = zip_members(path)
    assert all(name == "header.json" or name.endswith(".npy") for name in members)
    header = json.loads(members["header.json"])
    assert header["format"] == "hwbench-latency-model" and header["metadata"]["board"] == BOARD
    with np.load(path) as npz:  # allow_pickle=False, numpy's default
        arrays = {name: npz[name] for name in npz.files if name != "header.json"}  # numpy gives it as bytes
    assert {a.dtype for a in arrays.values()} <= {np.dtype(np.float64), np.dtype(np.int64)}
    np.testing.assert_array_equal(arrays["overhead"], model.overhead_)
    for kind, regressor in model.regressors_.items():
        np.testing.assert_array_equal(arrays[f"regressors/{kind}/linear/coef"], regressor.linear_.coef_)
        np.testing.assert_array_equal(arrays[f"regressors/{kind}/correction/threshold"],
                                      regressor.correction_.threshold)


def test_damaged_artifacts_are_clear_errors(artifact_file, tmp_path):
    data = artifact_file.read_bytes()
    members = zip_members(artifact_file)
    plain_npz = write_zip(tmp_path / "plain.npz", {"a.npy": npy(np.ones(2))}).read_bytes()
    cases = [("truncated", data[:-500]), ("truncated", data[: len(data) // 2]),
             ("not a hwbench latency model", b"just some text\n" * 20),
             ("not a hwbench latency model", npy(np.zeros(3))),
             ("not a hwbench latency model", plain_npz),
             ("unreadable header", write_zip(tmp_path / "h", {**members, "header.json": b'{"format": '}).read_bytes())]
    # One flipped byte inside each member's stored data.
    with zipfile.ZipFile(artifact_file) as archive:
        for info in archive.infolist():
            start = info.header_offset + 30 + len(info.filename) + int.from_bytes(
                data[info.header_offset + 28: info.header_offset + 30], "little")
            flipped = bytearray(data)
            flipped[start + info.compress_size // 2] ^= 0x10
            cases.append(("damaged", bytes(flipped)))
    assert len(cases) > 10
    for expected, content in cases:
        path = tmp_path / "bad.latmodel"
        path.write_bytes(content)
        with pytest.raises(ArtifactError, match=expected) as error:
            load_artifact(path)
        assert len(str(error.value).splitlines()) == 1
    with pytest.raises(ArtifactError, match="no such latency-model file"):
        load_artifact(tmp_path / "missing.latmodel")


def test_model_state_the_predictor_cannot_use_is_refused(fitted_each_regressor, fitted, tmp_path):
    source = tmp_path / "forest.latmodel"
    save_artifact(fitted_each_regressor["log-forest"], fitted.metadata(), source)
    members = zip_members(source)
    child = np.load(io.BytesIO(members["regressors/GENERIC/forest/child.npy"]))
    out_of_range = child.copy()
    out_of_range[7] = child.size  # a node index past the last node
    without_generic = {name: data for name, data in members.items() if not name.startswith("regressors/GENERIC/")}
    cases = {
        "index outside": {**members, "regressors/GENERIC/forest/child.npy": npy(out_of_range)},
        "is not float64": {**members, "overhead.npy": npy(np.zeros(2, dtype=np.float32))},
        "no array 'regressors/GENERIC/forest/value'": {
            name: data for name, data in members.items() if name != "regressors/GENERIC/forest/value.npy"},
        "no GENERIC regressor": with_header(without_generic, lambda h: h["model"]["regressors"].pop("GENERIC")),
        "unknown regressor 'xgboost'": with_header(
            members, lambda h: h["model"]["regressors"]["GENERIC"].update(regressor="xgboost")),
    }
    for expected, content in cases.items():
        with pytest.raises(ArtifactError, match=f"damaged latency-model file .*{expected}"):
            load_artifact(write_zip(tmp_path / "bad.latmodel", content))


def test_artifact_of_another_schema_board_or_format_is_refused(artifact_file, tmp_path):
    with pytest.raises(ArtifactError, match=f"board {BOARD}, not mps2-an500"):
        load_artifact(artifact_file, board="mps2-an500")
    members = zip_members(artifact_file)
    other = write_zip(tmp_path / "schema.latmodel",
                      with_header(members, lambda h: h["metadata"].update(feature_schema=999)))
    with pytest.raises(ArtifactError, match="feature schema 999"):
        load_artifact(other)
    newer = write_zip(tmp_path / "newer.latmodel", with_header(members, lambda h: h.update(version=99)))
    with pytest.raises(ArtifactError, match="format 99"):
        load_artifact(newer)


class TouchOnUnpickling:
    """Unpickling this creates `marker`: the code a pickled model file can run when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_crafted_pickles_are_refused_and_run_nothing(artifact_file, collected, tmp_path, capsys):
    # The payloads do run code when unpickled (so the test below could fail)...
    pickle.loads(pickle.dumps(TouchOnUnpickling(tmp_path / "control-pickle")))
    np.load(io.BytesIO(npy(np.array([TouchOnUnpickling(tmp_path / "control-npy")]), allow_pickle=True)),
            allow_pickle=True)
    assert (tmp_path / "control-pickle").exists() and (tmp_path / "control-npy").exists()

    # ...and loading a model file that carries them runs nothing.
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(TouchOnUnpickling(marker))
    object_array = npy(np.array([TouchOnUnpickling(marker)]), allow_pickle=True)
    members = zip_members(artifact_file)
    metadata = json.loads(members["header.json"])["metadata"]
    # Container version 1, as hwbench wrote it: a magic line, a JSON header with the payload's size and
    # checksum, then a pickle.
    old_header = {"metadata": metadata, "payload": {"format": "pickle", "bytes": len(payload),
                                                    "sha256": hashlib.sha256(payload).hexdigest()}}
    old_container = b"HWBENCH-LATENCY-MODEL 1\n" + json.dumps(old_header).encode() + b"\n" + payload
    cases = [
        ("old-format .*re-run hwbench fit", old_container),
        ("old-format .*re-run hwbench fit", payload),
        ("damaged .*overhead.npy.*allow_pickle", {**members, "overhead.npy": object_array}),
        ("damaged .*overhead.npy", {**members, "overhead.npy": payload}),
        ("unexpected member model.pkl", {**members, "model.pkl": payload}),
        ("unreadable header", {**members, "header.json": payload}),
    ]
    for expected, content in cases:
        path = tmp_path / "crafted.latmodel"
        path.write_bytes(content) if isinstance(content, bytes) else write_zip(path, content)
        with pytest.raises(ArtifactError, match=expected):
            load_artifact(path)
        code, _, err = run_cli(capsys, "predict", collected[1][0], "-m", path)
        assert str(path) in one_error_line(code, err)
    assert not marker.exists()


# ------------------------------------------------------------------------------ CLI


def test_cli_fit_reports_both_predictors_and_writes_a_usable_model(collected, tmp_path, capsys):
    db, files = collected
    out_file, plot = tmp_path / "m.latmodel", tmp_path / "fit.png"
    code, out, err = run_cli(capsys, "fit", "--db", db, "--board", BOARD, "--out", out_file, "--test-fraction",
                             "0.2", "--seed", "1", "--plot", plot)
    assert code == 0, err
    assert f"trained on {N_TRAIN} models" in out and f"{N_MODELS - N_TRAIN} held out" in out
    for text in ("MAPE", "RMSPE", "R²", "within ±5%", "within ±10%", "learned", "MACs baseline", "CONV_2D",
                 "per-inference overhead"):
        assert text in out, text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_artifact(out_file).metadata["n_test_models"] == N_MODELS - N_TRAIN


def test_cli_fit_json_is_the_model_files_metadata(collected, tmp_path, capsys):
    db, _ = collected
    out_file = tmp_path / "m.latmodel"
    code, out, err = run_cli(capsys, "fit", "--db", db, "--board", BOARD, "--out", out_file, "--seed", "1", "--json")
    report = json.loads(out)
    assert code == 0, err
    meta = load_artifact(out_file).metadata
    for key in ("board", "unit", "runtime_hash", "n_models", "n_test_models", "held_out", "per_operator", "overhead"):
        assert report[key] == meta[key], key
    assert set(report["held_out"]) == {"learned", "baseline"} and report["out"] == str(out_file)


def test_cli_predict_json_has_the_promised_keys(artifact_file, collected, capsys):
    _, files = collected
    code, out, err = run_cli(capsys, "predict", files[0], "--latency-model", artifact_file, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {"model", "count", "unit", "ms", "baseline_count", "peak_bytes", "layers"} <= set(report)
    graph = read_tflite(files[0])
    assert report["unit"] == "instructions" and report["ms"] == pytest.approx(report["count"] / 25e6 * 1e3)
    assert report["peak_bytes"] == memory_report(graph).peak_bytes
    assert len(report["layers"]) == len(graph.ops)
    assert report["count"] == pytest.approx(sum(l["count"] for l in report["layers"]) + report["overhead_count"])
    code, out, _ = run_cli(capsys, "predict", files[0], files[1], "-m", artifact_file, "--json")
    reports = json.loads(out)
    assert code == 0 and isinstance(reports, list) and [r["model"] for r in reports] == [str(files[0]), str(files[1])]
    code, out, _ = run_cli(capsys, "predict", files[0], "-m", artifact_file)
    assert code == 0 and "predicted" in out and "MACs baseline" in out and "peak memory" in out


def test_cli_predict_reads_models_that_are_not_int8(artifact_file, tmp_path, capsys):
    """A LeNet whose int8 body ends in a float LOG_SOFTMAX, and the same LeNet with int16 activations:
    predicted (as the int8 kernels would run them), with their memory at their dtypes' sizes."""
    from keras_ops import LENET_INPUT, convert, lenet

    files = [tmp_path / "lenet-float-tail.tflite", tmp_path / "lenet-int16.tflite"]
    files[0].write_bytes(convert(lenet("log_softmax"), [LENET_INPUT], "int8", float_io=True, calibration=(0.0, 1.0),
                                 float_ops=["LOG_SOFTMAX"]))
    files[1].write_bytes(convert(lenet("softmax"), [LENET_INPUT], "int16", calibration=(0.0, 1.0)))
    code, out, err = run_cli(capsys, "predict", *files, "-m", artifact_file, "--json")
    assert code == 0, err
    for path, report in zip(files, json.loads(out)):
        graph = read_tflite(path)
        assert report["count"] > 0 and report["peak_bytes"] == memory_report(graph).peak_bytes
        assert [l["op"] for l in report["layers"]] == [graph.ops[l["index"]].type for l in report["layers"]]
    reports = json.loads(out)
    assert reports[0]["not_int8_ops"] == ["LOG_SOFTMAX"]
    assert "CONV_2D" in reports[1]["not_int8_ops"] and "priced as if they were int8" in err


def test_cli_predict_warns_when_the_board_runtime_changed(fitted, collected, tmp_path, capsys):
    stale = tmp_path / "stale.latmodel"
    save_artifact(fitted.model, {**fitted.metadata(), "runtime_hash": "0000000000000000"}, stale)
    code, out, err = run_cli(capsys, "predict", collected[1][0], "-m", stale, "--json")
    assert code == 0 and json.loads(out)["count"] > 0
    assert "warning:" in err and "0000000000000000" in err


def _db_with(collected, path: Path, keep: int | None = None, status: str | None = None) -> Path:
    db = copy_db(collected[0], path)
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA foreign_keys = ON")
        if keep is not None:
            c.execute("DELETE FROM measurements WHERE id NOT IN (SELECT id FROM measurements ORDER BY id LIMIT ?)",
                      (keep,))
        if status is not None:
            c.execute("UPDATE measurements SET status = ?, verified = NULL, reason = 'test'", (status,))
    return db


def test_bad_inputs_to_fit_and_predict_are_one_line_errors(collected, artifact_file, tmp_path, capsys):
    out_file = tmp_path / "m.latmodel"
    fit = lambda db, board=BOARD: run_cli(capsys, "fit", "--db", db, "--board", board, "--out", out_file)  # noqa

    err = one_error_line(*fit(tmp_path / "missing.db")[::2])
    assert "no such results database" in err
    empty = tmp_path / "empty.db"
    ResultsDB(empty).close()
    assert "no measurements for board" in one_error_line(*fit(empty)[::2])
    assert "it has mps2-an386" in one_error_line(*fit(collected[0], "mps2-an500")[::2])
    unverified = _db_with(collected, tmp_path / "unverified.db", status="failed")
    assert "verified" in one_error_line(*fit(unverified)[::2])
    few = _db_with(collected, tmp_path / "few.db", keep=5)
    assert "too few" in one_error_line(*fit(few)[::2])
    assert not out_file.exists()

    garbage = tmp_path / "garbage.latmodel"
    garbage.write_bytes(b"\x00" * 300)
    code, _, err = run_cli(capsys, "predict", collected[1][0], "-m", garbage)
    assert "not a hwbench latency model" in one_error_line(code, err)
    code, _, err = run_cli(capsys, "predict", tmp_path / "nope.tflite", "-m", artifact_file)
    assert "no such file" in one_error_line(code, err)
