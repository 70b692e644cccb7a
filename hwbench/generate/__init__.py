"""Random small full-int8 models for latency benchmarking: `generate_models` and its manifest.

Model `i` of seed `s` depends on (s, i) only, so a population is byte-identical whatever the
number of worker processes and whichever process builds which model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from itertools import repeat
from pathlib import Path
from typing import Protocol

import numpy as np

from hwbench.boards import Board
from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench.generate.space import Bounds, sample_architecture
from hwbench.generate.spec_graph import graph_spec_cost
from hwbench.graph import Graph
from hwbench.memory import schedule
from hwbench.tflite_reader import parse_tflite

MANIFEST = "manifest.jsonl"
MAX_BUILDS = 5  # converted models per index that may prove unusable before giving up (none should)
# Random int8 models here have values within about ±100 (scale < 1); far beyond is a calibration failure.
MAX_ACTIVATION_SCALE = 1e6


class Check(Protocol):
    """What else a generated model must pass: why it fails, or None. `name` is what a manifest records."""

    name: str

    def __call__(self, graph: Graph) -> str | None: ...


def model_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def make_model(seed: int, index: int, bounds: Bounds, check: Check | None = None) -> tuple[dict, bytes]:
    """The architecture and `.tflite` bytes of model `index` of population `seed` (see generate_models)."""
    from hwbench.generate.build import build_tflite

    rng = model_rng(seed, index)
    for _ in range(MAX_BUILDS):
        arch, _ = sample_architecture(rng, bounds)
        data = build_tflite(arch, rng)
        graph = parse_tflite(data)
        problem = _calibration_problem(graph) or _bounds_problem(graph, bounds) or (check and check(graph))
        if problem is None:
            return arch, data
    raise HwbenchError(f"model {index} of seed {seed}: {MAX_BUILDS} converted models in a row were unusable, the "
                       f"last one because {problem}; please report it with this seed")


def _calibration_problem(graph: Graph) -> str | None:
    """A wild calibrated range, which gives requantization multipliers no int8 runtime can apply.

    Measured: TF 2.21's calibration reads uninitialized memory for one convolution geometry (which the
    sampler avoids) and then records scales up to 1e33 for values within ±3; this catches any other."""
    for t in graph.tensors:
        if t.dtype == "int8" and not t.is_constant and t.quantization is not None \
                and t.quantization.scale.max() > MAX_ACTIVATION_SCALE:
            return f"tensor '{t.name}' was calibrated to scale {t.quantization.scale.max():.3g}"
    return None


def _bounds_problem(graph: Graph, bounds: Bounds) -> str | None:
    # The spec's costs are the converted model's (tests/test_generate.py); bounds hold on the file regardless.
    cost = graph_spec_cost(graph)
    broken = bounds.violations(cost)
    return f"it breaks {', '.join(broken)} ({cost}) although its spec did not" if broken else None


def manifest_entry(file_name: str, seed: int, index: int, arch: dict, data: bytes, bounds: Bounds,
                   check: Check | None = None) -> dict:
    graph = parse_tflite(data, source=file_name)
    cost = graph_cost(graph)
    return {
        "file": file_name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "seed": seed,
        "index": index,
        "bounds": dataclasses.asdict(bounds),
        **({"check": check.name} if check else {}),
        "architecture": arch,
        "input_shape": list(graph.tensors[graph.inputs[0]].shape),
        "macs": cost.macs,
        "weight_bytes": cost.weight_bytes,
        "activation_bytes": cost.activation_bytes,
        "peak_bytes": schedule(graph).peak_bytes,
        "op_counts": graph.op_counts(),
    }


def bounds_for(max_macs: int | None = None, max_weight_bytes: int | None = None, max_peak_bytes: int | None = None,
               board: Board | None = None) -> Bounds:
    """Default bounds, overridden where given, and tightened to half a board's flash and SRAM
    (the other half is left to the firmware, the stack and the runtime)."""
    default = Bounds()
    weights = max_weight_bytes or default.max_weight_bytes
    peak = max_peak_bytes or default.max_peak_bytes
    if board is not None:
        weights, peak = min(weights, board.flash.size // 2), min(peak, board.sram.size // 2)
    return Bounds(max_macs=max_macs or default.max_macs, max_weight_bytes=weights, max_peak_bytes=peak)


def generate_models(count: int, seed: int, out_dir: str | Path, jobs: int = 1, bounds: Bounds | None = None,
                    progress: Callable[[dict], None] | None = None, check: Check | None = None) -> list[dict]:
    """Write `count` models and `manifest.jsonl` to `out_dir`; return the manifest entries.

    `check`: what else a model must pass, when the models are for a board (firmware_runner.collect.RunsOn:
    the hwbench runtime compiles it and it fits beside the board's firmware); a model that does not is
    drawn again, as one outside `bounds` is. A model the folder's manifest already lists for this
    seed, these bounds and this check, whose file is there with the listed sha256, is kept as it is:
    a rerun builds only what is missing or damaged. `progress` is called with each entry as its model
    is written (or kept).
    """
    if count < 1:
        raise HwbenchError(f"--count must be at least 1, got {count}")
    if jobs < 1:
        raise HwbenchError(f"--jobs must be at least 1, got {jobs}")
    bounds = bounds or Bounds()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HwbenchError(f"{out_dir}: cannot create the output folder: {e.strerror}") from None
    width = max(4, len(str(count - 1)))
    names = [f"model_{index:0{width}d}.tflite" for index in range(count)]
    kept = _kept_entries(out_dir, seed, bounds, check)
    kept = {i: e for i, e in kept.items() if i < count and e["file"] == names[i]}
    built = _built_models(seed, [i for i in range(count) if i not in kept], bounds, check, jobs)
    entries = []
    with open(out_dir / MANIFEST, "w") as manifest, closing(built):
        for index, name in enumerate(names):
            if index in kept:
                entry = kept[index]
            else:
                arch, data = next(built)
                (out_dir / name).write_bytes(data)
                entry = manifest_entry(name, seed, index, arch, data, bounds, check)
            manifest.write(json.dumps(entry) + "\n")
            manifest.flush()
            entries.append(entry)
            if progress:
                progress(entry)
    return entries


def _kept_entries(out_dir: Path, seed: int, bounds: Bounds, check: Check | None) -> dict[int, dict]:
    """index -> the manifest entry of a model already in `out_dir` for this seed, bounds and check,
    whose file still has the sha256 the manifest lists."""
    try:
        lines = (out_dir / MANIFEST).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    kept = {}
    for line in lines:
        try:
            entry = json.loads(line)
            same = entry["seed"] == seed and entry.get("bounds") == dataclasses.asdict(bounds) \
                and entry.get("check") == (check and check.name)
            if same and hashlib.sha256((out_dir / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]:
                kept[entry["index"]] = entry
        except (ValueError, KeyError, TypeError, OSError):
            continue  # a damaged line or a missing file: that model is built again
    return kept


def _built_models(seed: int, indices: list[int], bounds: Bounds, check: Check | None,
                  jobs: int) -> Iterator[tuple[dict, bytes]]:
    """(architecture, bytes) of the models `indices`, in that order, built by `jobs` processes."""
    if jobs == 1 or len(indices) < 2:
        yield from (make_model(seed, i, bounds, check) for i in indices)
        return
    # spawn, not fork: TensorFlow's threads do not survive a fork.
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(make_model, repeat(seed), indices, repeat(bounds), repeat(check))
    finally:
        pool.shutdown(cancel_futures=True)
