"""Accuracy and speed of the learned latency models on the emulated boards; prints one JSON object.

    python benchmarks/latency_accuracy.py [--boards mps2-an386 mps2-an500] [--train 1000] [--test 400]
                                          [--data out] [--jobs 2] [--no-collect]

Per board: generated training models (seed 101) and held-out generated models from another seed
(202) are measured on the emulated board (what is already in the results DBs under the current
firmware is reused: a rerun only collects what is missing), the five MLPerf Tiny models too. Then:

- held-out accuracy of the latency model trained on `--train` models, and of the MACs baseline
  fitted on the same models (MAPE, RMSPE, R², share within ±5% / ±10%, worst error);
- each MLPerf Tiny model: measured, predicted, error; the baseline beside it;
- a learning curve: the same held-out accuracy with 100, 300 and 1,000 training models;
- `LatencyModel.predict` throughput on 20-layer graphs: cold (features computed) and warm (features
  cached), with the machine's load average at the time (this machine has 2 cores, shared).

The training, held-out and MLPerf counts all come from one runtime build (the current firmware, or
with --no-collect the latest runtime in the training DB); models without a count under it are left
out and the numbers say how many were used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwbench.boards import get_board  # noqa: E402
from hwbench.graph import Graph, Op, Quantization, Tensor  # noqa: E402
from hwbench.results import ResultsDB  # noqa: E402
from latency_models.dataset import Dataset, load_dataset  # noqa: E402
from latency_models.metrics import accuracy  # noqa: E402
from latency_models.model import LatencyModel  # noqa: E402
from latency_models.training import fit_dataset  # noqa: E402

MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"
MLPERF_NAMES = {"kws_ref_model.tflite": "kws", "vww_96_int8.tflite": "vww", "pretrainedResnet_quant.tflite": "ic",
                "ad01_int8.tflite": "ad", "str_ww_ref_model.tflite": "sww"}
TARGETS = {"held_out_within_10": 0.99, "held_out_mape": 3.0, "mlperf_error_percent": 10.0}


def model_files(folder: Path, count: int, seed: int, jobs: int) -> list[Path]:
    """The first `count` generated models of `seed` in `folder`, generating them when missing (the
    same folder `hwbench collect --count N --seed S --db DIR/x.db` writes)."""
    files = sorted(folder.glob("*.tflite"))
    if len(files) < count:
        from hwbench.generate import generate_models

        log(f"generating {count} models (seed {seed}) in {folder}")
        generate_models(count, seed, folder, jobs=jobs)
        files = sorted(folder.glob("*.tflite"))
    return files[:count]


def collect_into(board, files: list[Path], db: Path, jobs: int) -> str:
    from firmware_runner.collect import collect
    from firmware_runner.firmware.build import build_firmware

    firmware = build_firmware(board)
    recorded = collect(board, files, ResultsDB(db), repeats=1, jobs=jobs)
    log(f"{board.name}: {len(recorded)} model(s) measured now into {db.name} (runtime {firmware.runtime_hash})")
    return firmware.runtime_hash


def restrict(data: Dataset, files: list[Path]) -> Dataset:
    wanted = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    return data.subset([i for i, sha in enumerate(data.sha256) if sha in wanted])


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


def run_board(name: str, args) -> dict:
    board = get_board(name)
    data = Path(args.data)
    tag = name.removeprefix("mps2-")
    train_files = model_files(data / f"models-seed{args.train_seed}", args.train, args.train_seed, args.jobs)
    test_files = model_files(data / f"models-seed{args.test_seed}", args.test, args.test_seed, args.jobs)
    train_db, test_db, mlperf_db = data / f"lat-{tag}.db", data / f"lat-{tag}-test.db", data / "mlperf.db"
    mlperf_files = sorted(MLPERF.glob("*.tflite")) if MLPERF.is_dir() else []
    if args.no_collect:
        runtime = load_dataset(train_db, name).runtime_hash
    else:
        for attempt in range(3):  # the runtime sources may change while this runs (they are being worked on)
            runtimes = {collect_into(board, train_files, train_db, args.jobs),
                        collect_into(board, test_files, test_db, args.jobs),
                        *([collect_into(board, mlperf_files, mlperf_db, 1)] if mlperf_files else [])}
            if len(runtimes) == 1:
                break
            log(f"{name}: the runtime changed during collection ({', '.join(sorted(runtimes))}); collecting again")
        else:
            raise SystemExit(f"{name}: the runtime kept changing during collection; try again later")
        runtime = runtimes.pop()
    log(f"{name}: loading the datasets (runtime {runtime})")
    train = restrict(load_dataset(train_db, name, runtime), train_files)
    test = restrict(load_dataset(test_db, name, runtime), test_files)

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

    mlperf = []
    if mlperf_files:
        measured = load_dataset(mlperf_db, name, runtime)
        for graph, total, macs, file in zip(measured.graphs, measured.totals, measured.macs, measured.names):
            predicted = final.model.predict(graph)
            base = float(final.baseline.predict([macs])[0])
            mlperf.append({"model": MLPERF_NAMES.get(file, file), "file": file, "measured": total,
                           "predicted": round(predicted), "error_percent": round((predicted - total) / total * 100, 3),
                           "baseline": round(base), "baseline_error_percent": round((base - total) / total * 100, 2)})
        mlperf.sort(key=lambda r: r["model"])
    learned = final.metrics["learned"]
    met = {"held_out_within_10_at_least_99_percent": learned["within_10"] >= TARGETS["held_out_within_10"],
           "held_out_mape_at_most_3_percent": learned["mape"] <= TARGETS["held_out_mape"]}
    if mlperf:
        met["every_mlperf_model_within_10_percent"] = all(abs(r["error_percent"]) <= TARGETS["mlperf_error_percent"]
                                                          for r in mlperf) and len(mlperf) == len(MLPERF_NAMES)
    return {
        "unit": train.unit, "clock_hz": board.clock_hz, "runtime_hash": runtime,
        "train_models": len(final.train), "train_layers": final.model.n_layers_,
        "held_out_models": len(test), "train_seed": args.train_seed, "held_out_seed": args.test_seed,
        "held_out": {"learned": short(learned), "baseline": short(final.metrics["baseline"])},
        "regressors": {k: r.chosen for k, r in final.model.kind_reports_.items()},
        "overhead": {"per_inference": round(float(final.model.overhead_[0]), 2),
                     "per_op": round(float(final.model.overhead_[1]), 3)},
        "per_operator": [short(r) for r in final.per_operator],
        "mlperf_tiny": mlperf if mlperf else "../shared/models/mlperf-tiny is absent: not measured",
        "learning_curve": curve,
        "predict_throughput": throughput(final.model),
        "targets_met": met,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boards", nargs="+", default=["mps2-an386", "mps2-an500"])
    parser.add_argument("--train", type=int, default=1000, help="training models (the largest learning-curve point)")
    parser.add_argument("--test", type=int, default=400, help="held-out models from another seed")
    parser.add_argument("--train-seed", type=int, default=101)
    parser.add_argument("--test-seed", type=int, default=202)
    parser.add_argument("--curve", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--data", default=str(ROOT / "out"), help="folder of the model folders and results DBs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-collect", action="store_true", help="use the DBs as they are (latest runtime)")
    args = parser.parse_args()
    args.curve = sorted(set(args.curve) | {args.train})
    args.curve = [n for n in args.curve if n <= args.train]
    report = {"boards": {name: run_board(name, args) for name in args.boards}}
    print(json.dumps(report, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


if __name__ == "__main__":
    main()
