"""Collection speed, and the runtime's speed on the emulated MCUs; prints one JSON object.

    python benchmarks/collect.py [--board B ...] [--count 24] [--repeats 3] [--models DIR]

- models per minute with --jobs 1 and --jobs 2: `count` generated models (seed 31, within the first
  board's memory) collected on the first board into a fresh DB, firmware already built, reference
  checks included;
- for each MLPerf Tiny model (from --models, default ../shared/models/mlperf-tiny) on each board
  (default: every bundled emulated board): instructions per inference and per MAC, or why it was not
  run (TFLM with CMSIS-NN is the peer to beat later).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hwbench.boards import get_board, list_boards
from hwbench.generate import bounds_for, generate_models
from hwbench.results import ResultsDB
from firmware_runner.backends.qemu import QemuBackend
from firmware_runner.collect import RunsOn, collect, measure
from firmware_runner.firmware.build import build_firmware

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", action="append", dest="boards",
                        help="an emulated board (repeat for several; default: every bundled emulated board)")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", type=Path, default=MLPERF, help="the MLPerf Tiny models' folder")
    args = parser.parse_args()
    boards = [get_board(name) for name in args.boards] if args.boards else [b for b in list_boards() if b.emulated]

    board = boards[0]
    build_firmware(board)
    speed = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        generate_models(args.count, 31, models, jobs=2, bounds=bounds_for(board=board), check=RunsOn(board))
        files = sorted(models.glob("*.tflite"))
        for jobs in (1, 2):
            start = time.perf_counter()
            done = collect(board, files, ResultsDB(Path(tmp) / f"jobs{jobs}.db"), repeats=args.repeats, jobs=jobs)
            minutes = (time.perf_counter() - start) / 60
            speed[f"jobs_{jobs}"] = {"models": len(done), "verified": sum(bool(m.verified) for m in done),
                                     "models_per_minute": round(len(done) / minutes, 1)}

    mlperf = {}
    for b in boards:
        firmware, backend = build_firmware(b), QemuBackend(b)
        for path in sorted(args.models.glob("*.tflite")):
            m = measure(path, b, firmware, backend, repeats=1)
            mlperf.setdefault(path.stem, {})[b.name] = {
                "core": b.core, "status": m.status, "reason": m.reason, "verified": m.verified,
                "instructions": m.count, "macs": m.macs,
                "instructions_per_mac": round(m.count / m.macs, 2) if m.count and m.macs else None,
                "arena_bytes": m.arena_bytes, "stack_bytes": m.stack_bytes, "seconds": round(m.seconds or 0, 2)}
    print(json.dumps({"board": board.name, "repeats": args.repeats, "collection_speed": speed,
                      "mlperf_tiny": mlperf or f"absent (no .tflite files in {args.models})"}, indent=1))


if __name__ == "__main__":
    main()
