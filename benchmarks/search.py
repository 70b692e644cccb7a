"""Architecture search: aging evolution against random search at the same budget; prints one JSON object.

    python benchmarks/search.py [--dataset digits] [--board mps2-an386] [--max-peak 1024] [--max-flash N]
                                [--latency-model FILE --max-latency-ms X] [--rounds 60] [--epochs 8]
                                [--population 20] [--sample 5] [--workers 2] [--seed 0] [--out DIR]

For each algorithm: wall-clock minutes, candidates per minute, and the best feasible candidate
(highest int8 validation accuracy) with its int8 test accuracy, peak, flash and latency, plus
the first minute at which a feasible candidate reached each test accuracy in --milestones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from hwbench.boards import get_board
from nas.objectives import board_bounds, runtime_code_bytes
from nas.report import best, feasible
from nas.search import Search, SearchSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--board", default="mps2-an386")
    parser.add_argument("--max-peak", type=int, default=1024)
    parser.add_argument("--max-flash", type=int)
    parser.add_argument("--latency-model")
    parser.add_argument("--max-latency-ms", type=float)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--sample", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--milestones", type=float, nargs="*", default=[0.9, 0.95])
    parser.add_argument("--out", type=Path, help="keep the searches here (default: a temporary folder)")
    args = parser.parse_args()
    board = get_board(args.board)
    bounds = board_bounds(board, args.max_peak, args.max_flash, None, args.max_latency_ms)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for algorithm in ("aging", "random"):
            settings = SearchSettings(board.name, args.dataset, bounds, args.latency_model, algorithm, args.rounds,
                                      args.epochs, args.seed, args.population, args.sample,
                                      in_flight=max(4, args.workers), runtime_code_bytes=runtime_code_bytes(board))
            finished_at: dict[int, float] = {}
            start = time.perf_counter()
            with Search(settings, root / algorithm) as search:
                search.run(args.workers, progress=lambda c, done: finished_at.setdefault(c.round,
                                                                                        time.perf_counter() - start))
                minutes = (time.perf_counter() - start) / 60
                candidates = search.candidates
            winner = best(candidates, bounds)
            reached = {}
            for milestone in args.milestones:
                times = [finished_at[c.round] for c in candidates.values()
                         if feasible(c, bounds) and c.evaluation.test_accuracy >= milestone]
                reached[f"{milestone:.2f}"] = round(min(times) / 60, 2) if times else None
            results[algorithm] = {
                "minutes": round(minutes, 2), "candidates": len(candidates),
                "candidates_per_minute": round(len(candidates) / minutes, 2),
                "feasible": sum(feasible(c, bounds) for c in candidates.values()),
                "best": None if winner is None else {"round": winner.round, **winner.evaluation.metrics(),
                                                     "spec": winner.spec},
                "minutes_to_test_accuracy": reached,
            }
    print(json.dumps({"dataset": args.dataset, "board": board.name, "bounds": settings.bounds.__dict__,
                      "rounds": args.rounds, "epochs": args.epochs, "workers": args.workers, "seed": args.seed,
                      **results}, indent=1))


if __name__ == "__main__":
    main()
