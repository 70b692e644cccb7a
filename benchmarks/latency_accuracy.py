"""Accuracy and speed of the learned latency models on the emulated boards; prints one JSON object.

    python benchmarks/latency_accuracy.py [--boards B ...] [--train 1000] [--test 400] [--curve 100 300]
                                          [--data out] [--mlperf DIR] [--jobs 2] [--no-collect]

Per board (default: every emulated board): generated training models (seed 101) and held-out
generated models from another seed (202), within the board's memory (latency_data.py), are measured
on the emulated board (what is already in the results DBs under the current firmware is reused: a
rerun only collects what is missing), the five MLPerf Tiny models (those that fit) and a model
mixing every operator the runtime runs (tests/keras_ops.py, mixed_operator_model) too. Then:

- held-out accuracy of the latency model trained on `--train` models, and of the MACs baseline
  fitted on the same models (MAPE, RMSPE, R², share within ±5% / ±10%, worst error);
- per operator kind, on the held-out models and on the MLPerf and mixed models: layers, share of
  the count, layer MAPE and the regressor it got (or "GENERIC fallback"); the kinds with no
  regressor of their own, and those any evaluated model had to predict with the fallback;
- each MLPerf Tiny model and the mixed model: measured, predicted, error; the baseline beside it;
- a learning curve: the same held-out accuracy with 100, 300 and 1,000 training models (--curve);
- `LatencyModel.predict` throughput on 20-layer graphs: cold (features computed) and warm (features
  cached), with the machine's load average at the time (this machine has 2 cores, shared).

The training, held-out and MLPerf counts all come from one runtime build (the current firmware, or
with --no-collect the latest runtime in the training DB); models without a count under it are left
out and the numbers say how many were used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwbench.boards import get_board  # noqa: E402
from hwbench.graph import KNOWN_OPS, Graph, Op, Quantization, Tensor  # noqa: E402
from latency_data import add_data_options, board_data, log  # noqa: E402
from latency_models.features import GENERIC, KINDS, kind_of  # noqa: E402
from latency_models.metrics import accuracy, per_operator  # noqa: E402
from latency_models.model import LatencyModel  # noqa: E402
from latency_models.training import fit_dataset  # noqa: E402

MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
MLPERF_NAMES = {"kws_ref_model.tflite": "kws", "vww_96_int8.tflite": "vww", "pretrainedResnet_quant.tflite": "ic",
                "ad01_int8.tflite": "ad", "str_ww_ref_model.tflite": "sww"}
MIXED = "mixed-every-operator.tflite"
TARGETS = {"held_out_within_10": 0.99, "held_out_mape": 3.0, "check_error_percent": 1.0}


def mixed_model(folder: Path) -> Path:
    """The model mixing every operator (the tests' builder, seeded: the same bytes every run)."""
    path = folder / MIXED
    if not path.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from keras_ops import mixed_operator_model

        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mixed_operator_model(seed=0))
    return path


def chain_graph(rng: np.random.Generator, name: str) -> Graph:
    """A 20-op MobileNet-like graph: 8 × (depthwise, pointwise conv), average pool, reshape, fully
    connected, softmax; random input size and widths (features only need shapes and options)."""
    q = Quantization(np.array([0.05], dtype=np.float32), np.array([0]))
    tensors: list[Tensor] = []

    def tensor(shape, constant=False):
        tensors.append(Tensor(f"t{len(tensors)}", tuple(int(d) for d in shape), "int8", q,
                              np.zeros(1, dtype=np.int8) if constant else None))
        return len(tensors) - 1

    size, channels = int(rng.choice([12, 16, 24, 32, 48])), int(rng.choice([8, 16, 24, 32]))
    x = tensor((1, size, size, channels))
    first, ops = x, []
    for block in range(8):
        stride = 2 if block in (2, 5) and size > 4 else 1
        out = -(-size // stride)
        w = tensor((1, 3, 3, channels), constant=True)
        y = tensor((1, out, out, channels))
        ops.append(Op("DEPTHWISE_CONV_2D", (x, w, -1), (y,), {"padding": "SAME", "stride_h": stride, "stride_w": stride,
                                                              "depth_multiplier": 1, "fused_activation_function": "RELU"}))
        wider = int(min(channels * rng.choice([1, 2]), 128))
        w = tensor((wider, 1, 1, channels), constant=True)
        z = tensor((1, out, out, wider))
        ops.append(Op("CONV_2D", (y, w, -1), (z,), {"padding": "SAME", "stride_h": 1, "stride_w": 1,
                                                    "fused_activation_function": "RELU6"}))
        x, size, channels = z, out, wider
    pooled = tensor((1, 1, 1, channels))
    ops.append(Op("AVERAGE_POOL_2D", (x,), (pooled,), {"padding": "VALID", "stride_h": size, "stride_w": size,
                                                      "filter_height": size, "filter_width": size}))
    flat = tensor((1, channels))
    ops.append(Op("RESHAPE", (pooled, tensor((2,), constant=True)), (flat,), {}))
    logits = tensor((1, 10))
    ops.append(Op("FULLY_CONNECTED", (flat, tensor((10, channels), constant=True), -1), (logits,), {}))
    probabilities = tensor((1, 10))
    ops.append(Op("SOFTMAX", (logits,), (probabilities,), {"beta": 1.0}))
    return Graph(tensors, ops, (first,), (probabilities,), name)


def throughput(model: LatencyModel, n_graphs: int = 2000) -> dict:
    rng = np.random.default_rng(7)
    graphs = [chain_graph(rng, f"chain{i}") for i in range(n_graphs)]
    assert all(len(g.ops) == 20 for g in graphs)
    model.clear_cache()
    start = time.perf_counter()
    for g in graphs:
        model.predict(g)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for g in graphs:
        model.predict(g)
    warm = time.perf_counter() - start
    return {"layers_per_graph": 20, "graphs": n_graphs, "cold_graphs_per_s": round(n_graphs / cold),
            "warm_graphs_per_s": round(n_graphs / warm), "load_average_1min": round(os.getloadavg()[0], 2)}


def short(metrics: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}


def check_row(result, graph: Graph, total: float, macs: float, file: str) -> dict:
    """A model predicted by the latency model and the baseline, against what the board counted."""
    predicted = result.model.predict(graph)
    base = float(result.baseline.predict([macs])[0])
    return {"model": MLPERF_NAMES.get(file, file.removesuffix(".tflite")), "file": file, "measured": total,
            "predicted": round(predicted), "error_percent": round((predicted - total) / total * 100, 3),
            "baseline": round(base), "baseline_error_percent": round((base - total) / total * 100, 2)}


def run_board(name: str, args) -> dict:
    board = get_board(name)
    mlperf = Path(args.mlperf)
    check_files = [*(sorted(mlperf.glob("*.tflite")) if mlperf.is_dir() else []), mixed_model(Path(args.data) / "mixed")]
    measured = board_data(board, Path(args.data), args.train, args.test, args.train_seed, args.test_seed, args.jobs,
                          collect=not args.no_collect, extra_files=check_files)
    train, test, checks, runtime = measured.train, measured.test, measured.extra, measured.runtime_hash

    curve, final = [], None
    order = np.random.default_rng(0).permutation(len(train))
    for n in sorted({min(n, len(train)) for n in args.curve}):
        subset = train.subset(sorted(order[:n]))
        start = time.perf_counter()
        result = fit_dataset(subset, test, clock_hz=board.clock_hz, seed=0)
        seconds = time.perf_counter() - start
        log(f"{name}: {n} training models: MAPE {result.metrics['learned']['mape']:.3f}% "
            f"(baseline {result.metrics['baseline']['mape']:.1f}%), fit+evaluate {seconds:.0f} s")
        curve.append({"train_models": n, "learned": short(result.metrics["learned"]),
                      "baseline": short(result.metrics["baseline"]), "fit_and_evaluate_seconds": round(seconds, 1)})
        final = result

    rows = sorted((check_row(final, *measured) for measured in
                   zip(checks.graphs, checks.totals, checks.macs, checks.names)), key=lambda r: r["model"])
    mlperf_rows = [r for r in rows if r["file"] != MIXED]
    mixed = next((r for r in rows if r["file"] == MIXED), None)
    model = final.model
    # Every kind the runtime runs should have a regressor of its own; which ones fell back, and which
    # evaluated models needed the fallback. An operator with fast paths runs its reference path only
    # for what they refuse (grouped or dilated convolutions, ...): its kinds are those its layers take.
    with_paths = {k.split(".")[0] for k in KINDS if "." in k}
    taken = {model.op_kind(g, op) for g in [*train.graphs, *test.graphs, *checks.graphs] for op in g.ops}
    expected = {kind_of(t) for t in KNOWN_OPS if t not in with_paths} | {k for k in taken if k != GENERIC}
    without_regressor = sorted(expected - set(model.regressors_))
    fallback_used = sorted(set().union(*(model.fallback_kinds(g) for g in [*test.graphs, *checks.graphs])))
    learned = final.metrics["learned"]
    within = TARGETS["check_error_percent"]
    met = {"held_out_within_10_at_least_99_percent": learned["within_10"] >= TARGETS["held_out_within_10"],
           "held_out_mape_at_most_3_percent": learned["mape"] <= TARGETS["held_out_mape"],
           "no_operator_kind_on_the_fallback": not without_regressor,
           "mixed_model_within_1_percent": mixed is not None and abs(mixed["error_percent"]) <= within}
    # The MLPerf Tiny models that do not fit the board (most, on the micro:bit) are recorded as
    # skipped and have no count.
    not_measured = sorted({MLPERF_NAMES[f.name] for f in check_files if f.name in MLPERF_NAMES}
                          - {r["model"] for r in mlperf_rows})
    if mlperf_rows:
        met["every_mlperf_model_that_fits_within_1_percent"] = all(abs(r["error_percent"]) <= within
                                                                  for r in mlperf_rows)
    return {
        "unit": train.unit, "clock_hz": board.clock_hz, "runtime_hash": runtime,
        "train_models": len(final.train), "train_layers": model.n_layers_,
        "held_out_models": len(test), "train_seed": args.train_seed, "held_out_seed": args.test_seed,
        "held_out": {"learned": short(learned), "baseline": short(final.metrics["baseline"])},
        "regressors": {k: r.chosen for k, r in model.kind_reports_.items()},
        "kinds_without_regressor": without_regressor,
        "fallback_used_by": fallback_used,
        "overhead": {"per_inference": round(float(model.overhead_[0]), 2),
                     "per_op": round(float(model.overhead_[1]), 3)},
        "per_operator": [short(r) for r in final.per_operator],
        "per_operator_mlperf_and_mixed": [short(r) for r in per_operator(model, checks.graphs, checks.layer_counts,
                                                                         checks.totals)],
        "mlperf_tiny": mlperf_rows if mlperf_rows else f"{mlperf} is absent: not measured",
        "mlperf_tiny_not_measured": not_measured,
        "mixed_every_operator": mixed if mixed else "the mixed model was not measured",
        "learning_curve": curve,
        "predict_throughput": throughput(model),
        "targets_met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser, train=1000, test=400)
    parser.add_argument("--curve", type=int, nargs="+", default=[100, 300, 1000],
                        help="training models of the learning curve (--train is the largest point)")
    parser.add_argument("--mlperf", default=str(MLPERF), help="folder of the MLPerf Tiny .tflite models")
    args = parser.parse_args()
    args.curve = sorted(set(args.curve) | {args.train})
    args.curve = [n for n in args.curve if n <= args.train]
    report = {"boards": {name: run_board(name, args) for name in args.boards}}
    print(json.dumps(report, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


if __name__ == "__main__":
    main()
