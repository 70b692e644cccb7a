"""The runtime's speed on the emulated MCUs next to TFLM + CMSIS-NN; prints one JSON object.

    python benchmarks/runtime_speed.py [--boards mps2-an386 mps2-an500] [--models kws ad ...]

For each MLPerf Tiny model on each board: instructions per inference (one measured run after a
warm-up, on the kernel paths the board takes, verified bit-exact against TFLite's reference), instructions
per MAC, the arena and the largest scratch buffer in it, the fast kernel paths taken, and the
per-operator breakdown (instructions per operator type, the heaviest first). On mps2-an386 each
model's count is divided by the TFLM + CMSIS-NN figure measured on the same emulated board (issue 12:
TFLM 90b983c2, CMSIS-NN 4ab83cc3, arm-none-eabi-gcc 12.2.1 -O2, one Invoke after a warm-up); the
target is every ratio <= 1.0 and their geometric mean <= 0.8. Code size: the runtime's .text
(interpreter and every kernel, built with the board's flags) and the whole firmware's, per board;
the target is a runtime of 64 KiB at most.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
from pathlib import Path

from hwbench.boards import get_board
from hwbench.tflite_reader import read_tflite
from firmware_runner.backends.qemu import QemuBackend
from firmware_runner.collect import measure
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.firmware.build import COMMON_FLAGS, board_flags, build_firmware
from firmware_runner.runtime.host import RUNTIME_DIR, runtime_sources

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite", "sww": "str_ww_ref_model.tflite"}
# TFLM + CMSIS-NN on mps2-an386, instructions per inference (issue 12).
TFLM_CMSIS_NN_AN386 = {"kws": 7_698_420, "vww": 24_101_901, "ic": 29_860_935, "ad": 582_951, "sww": 2_227_051}
BOARDS = ("mps2-an386", "mps2-an500")
RUNTIME_TEXT_LIMIT = 64 * 1024


def text_bytes(objects: list[Path]) -> int:
    """Sum of the `text` column of arm-none-eabi-size (code and read-only data)."""
    listing = subprocess.run(["arm-none-eabi-size", *map(str, objects)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[1:]
    return sum(int(line.split()[0]) for line in listing)


def runtime_text(board) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["arm-none-eabi-gcc", *COMMON_FLAGS, *board_flags(board), "-I", str(RUNTIME_DIR), "-c",
                        *map(str, runtime_sources())], cwd=tmp, check=True)
        return text_bytes(sorted(Path(tmp).glob("*.o")))


def breakdown(layers) -> dict[str, int]:
    per_type: dict[str, int] = {}
    for layer in layers:
        per_type[layer.op_type] = per_type.get(layer.op_type, 0) + int(layer.count)
    return dict(sorted(per_type.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if not MLPERF.exists():
        print(json.dumps({"mlperf_tiny": "absent (needs ../shared/models/mlperf-tiny)"}))
        return

    result: dict = {"boards": {}}
    for name in args.boards:
        board = get_board(name)
        firmware, backend = build_firmware(board), QemuBackend(board)
        models = {}
        for model in args.models:
            path = MLPERF / MODELS[model]
            plan = compile_plan(read_tflite(path), fast=firmware.fast_paths)
            m = measure(path, board, firmware, backend, repeats=1)
            row = {"status": m.status, "verified": m.verified, "instructions": m.count, "macs": m.macs,
                   "instructions_per_mac": round(m.count / m.macs, 2) if m.count and m.macs else None,
                   "arena_bytes": plan.arena_size, "scratch_bytes": plan.scratch_bytes,
                   "paths": sorted({f"{op.type}:{op.path}" for op in plan.ops if op.path != "reference"}),
                   "operators": breakdown(m.layers)}
            if name == "mps2-an386" and m.count:
                row["tflm_cmsis_nn"] = TFLM_CMSIS_NN_AN386[model]
                row["ratio"] = round(m.count / TFLM_CMSIS_NN_AN386[model], 3)
            models[model] = row
        ratios = [row["ratio"] for row in models.values() if "ratio" in row]
        summary = {"models": models, "runtime_text_bytes": runtime_text(board),
                   "runtime_text_limit": RUNTIME_TEXT_LIMIT,
                   "firmware_text_bytes": text_bytes([firmware.elf])}
        if ratios and len(ratios) == len(TFLM_CMSIS_NN_AN386):
            summary["geomean_ratio"] = round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3)
            summary["targets_met"] = max(ratios) <= 1.0 and summary["geomean_ratio"] <= 0.8
        result["boards"][name] = summary
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
