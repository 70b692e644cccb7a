"""Collection speed, and the runtime's speed on the emulated MCUs; prints one JSON object.

    python benchmarks/collect.py [--count 24] [--repeats 3]

- models per minute with --jobs 1 and --jobs 2: `count` generated models (seed 31) collected
  into a fresh DB, firmware already built, reference checks included;
- for each MLPerf Tiny model on mps2-an386 and mps2-an500: instructions per inference and per
  MAC (TFLM with CMSIS-NN is the peer to beat later).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hwbench.boards import get_board
from hwbench.generate import generate_models
from hwbench.results import ResultsDB
from firmware_runner.backends.qemu import QemuBackend
from firmware_runner.collect import collect, measure
from firmware_runner.firmware.build import build_firmware

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
BOARDS = ("mps2-an386", "mps2-an500")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    board = get_board("mps2-an386")
    build_firmware(board)
    speed = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        generate_models(args.count, 31, models, jobs=2)
        files = sorted(models.glob("*.tflite"))
        for jobs in (1, 2):
            start = time.perf_counter()
            done = collect(board, files, ResultsDB(Path(tmp) / f"jobs{jobs}.db"), repeats=args.repeats, jobs=jobs)
            minutes = (time.perf_counter() - start) / 60
            speed[f"jobs_{jobs}"] = {"models": len(done), "verified": sum(bool(m.verified) for m in done),
                                     "models_per_minute": round(len(done) / minutes, 1)}

    mlperf = {}
    for name in BOARDS:
        b = get_board(name)
        firmware, backend = build_firmware(b), QemuBackend(b)
        for path in sorted(MLPERF.glob("*.tflite")):
            m = measure(path, b, firmware, backend, repeats=1)
            mlperf.setdefault(path.stem, {})[name] = {
                "status": m.status, "verified": m.verified, "instructions": m.count, "macs": m.macs,
                "instructions_per_mac": round(m.count / m.macs, 2) if m.count and m.macs else None,
                "arena_bytes": m.arena_bytes, "stack_bytes": m.stack_bytes}
    print(json.dumps({"board": board.name, "repeats": args.repeats, "collection_speed": speed,
                      "mlperf_tiny": mlperf or "absent (needs ../shared/models/mlperf-tiny)"}, indent=1))


if __name__ == "__main__":
    main()
