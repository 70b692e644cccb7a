"""The one-screen summary at the end of `make demo`: what each step of the loop found, read from the
files the steps wrote in the demo folder (results.db, the latency model, search.json).

    python scripts/demo_summary.py out/demo
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from hwbench.results import ResultsDB
from latency_models.artifact import load_artifact

BOARD = "mps2-an386"


def main(folder: Path) -> None:
    search = json.loads((folder / "search.json").read_text())
    verification = search["verification"]
    db = ResultsDB(folder / "results.db")
    rows = db.measurements(BOARD).set_index("sha256")
    db.close()
    collected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "models-seed1").glob("*.tflite"))]
    verified = sum(bool(rows.loc[sha, "verified"]) for sha in collected if sha in rows.index)
    model = load_artifact(folder / f"{BOARD}.latmodel").metadata
    learned, baseline = model["held_out"]["learned"], model["held_out"]["baseline"]
    bounds = search["settings"]["bounds"]
    best = search["best"]

    print(f"\nhwbench demo: the whole loop on {BOARD} (QEMU), files in {folder}/")
    print(f" 1 collect  {len(collected)} random int8 models run on the board, {verified} bit-exact with TFLite "
          f"(per-layer counts in results.db)")
    print(f" 2 fit      latency model from {model['n_models']} models: on {model['n_test_models']} held-out ones "
          f"{learned['mape']:.1f}% mean error, {learned['within_10']:.0%} within ±10% (MACs baseline: "
          f"{baseline['mape']:.1f}%, {baseline['within_10']:.0%})")
    print(f" 3 search   {search['candidates']} candidates on digits, {search['feasible']} within peak ≤ "
          f"{bounds['max_peak_bytes']:,} B, flash ≤ {bounds['max_flash_bytes']:,} B, latency ≤ "
          f"{bounds['max_latency_ms']} ms; Pareto front of {search['pareto_size']}")
    if best is None:
        print("            no feasible candidate")
        return
    print(f"            best: round {best['round']}, int8 test accuracy {best['test_accuracy']:.1%} (validation "
          f"{best['val_accuracy']:.1%}), peak {best['peak_bytes']:,} B, flash {best['flash_bytes']:,} B, "
          f"{best['latency_ms']:.2f} ms predicted")
    print(f" 4 verify   {verification['verified']} of {verification['models']} Pareto models bit-exact on the board, "
          f"{verification['within_tolerance']} of {verification['predicted']} predictions within "
          f"±{verification['tolerance_pct']:g}%, {verification['arena_as_planned']} arenas as planned")
    for check in verification["checks"]:
        if check["round"] == best["round"] and check["measured_count"] is not None:
            print(f"            best: predicted {check['predicted_count']:,.0f} {check['unit']}, measured "
                  f"{check['measured_count']:,.0f} ({check['latency_error_pct']:+.1f}%); arena "
                  f"{check['planned_arena_bytes']:,} B planned, {check['board_arena_bytes']:,} B on the board")
    for problem in verification["problems"]:
        print(f"            warning: {problem}")
    print(f"   files    best.tflite, best.c/.h, pareto.csv, search.png in {folder / 'search'}; refit with: "
          f"hwbench fit --db {folder / 'results.db'} --board {BOARD} --out FILE")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
