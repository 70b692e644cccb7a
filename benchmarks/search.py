"""Architecture search: aging evolution against random search at the same budget; prints one JSON object.

    python benchmarks/search.py [--dataset digits] [--board mps2-an386] [--max-peak 1024] [--max-flash N]
                                [--max-weights N] [--latency-model FILE --max-latency-ms X] [--rounds 60]
                                [--minutes M] [--parallel] [--epochs 8] [--population 20] [--sample 5]
                                [--workers 2] [--seed 0] [--final-epochs N] [--verify-board B [--db FILE]]
                                [--out DIR]

The budget is --rounds candidates per algorithm or, with --minutes, M minutes of wall clock each (rounds
then only an upper bound): once spent no round is proposed, the candidates training finish, and only
those that finished within the budget count. One after the other by default; --parallel runs both at
once, each with half the workers, so one window of M minutes measures both.

For each algorithm: wall-clock minutes, candidates evaluated (within the budget and all), candidates per
minute, and the best feasible candidate (highest int8 validation accuracy) with its int8 test accuracy,
peak, arena, decoded op table, weights, flash and latency, plus the first minute at which a feasible
candidate reached each test accuracy in --milestones. --final-epochs then trains each best architecture
anew for N epochs (Search.retrain, after the budget) and reports its accuracy and minutes.
--verify-board runs the aging search's Pareto models on a board (nas/closed_loop.py) and reports how
many predictions were within 10% of the measured count and how many arenas were as planned.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hwbench.boards import get_board
from nas.objectives import board_bounds, runtime_code_bytes
from nas.report import best, feasible
from nas.search import Search, SearchSettings

ALGORITHMS = ("aging", "random")
ROUNDS_WITH_MINUTES = 100_000  # --rounds' default with --minutes: the clock is the budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--board", default="mps2-an386")
    parser.add_argument("--max-peak", type=int, default=1024)
    parser.add_argument("--max-flash", type=int)
    parser.add_argument("--max-weights", type=int)
    parser.add_argument("--latency-model")
    parser.add_argument("--max-latency-ms", type=float)
    parser.add_argument("--rounds", type=int, help="candidates per algorithm (60; with --minutes, unbounded)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget per algorithm")
    parser.add_argument("--parallel", action="store_true", help="both algorithms at once, half the workers each")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--sample", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--milestones", type=float, nargs="*", default=[0.9, 0.95])
    parser.add_argument("--final-epochs", type=int, default=0, help="then train each best architecture anew "
                        "for this many epochs")
    parser.add_argument("--verify-board", help="run the aging search's Pareto models on this board")
    parser.add_argument("--db", type=Path, help="with --verify-board: its results DB (default: in --out)")
    parser.add_argument("--out", type=Path, help="keep the searches here (default: a temporary folder)")
    args = parser.parse_args()
    if args.parallel and args.workers < 2:
        parser.error("--parallel gives each algorithm half the workers: give --workers 2 or more")
    if args.minutes is not None and args.minutes <= 0:
        parser.error("--minutes must be positive")
    rounds = args.rounds or (ROUNDS_WITH_MINUTES if args.minutes else 60)
    board = get_board(args.board)
    bounds = board_bounds(board, args.max_peak, args.max_flash, None, args.max_latency_ms, args.max_weights)
    workers = args.workers // 2 if args.parallel else args.workers
    # The same settings either way (in flight: what the sequential run's workers need), so a seed gives the
    # same candidates sequential or parallel.
    settings = {algorithm: SearchSettings(board.name, args.dataset, bounds, args.latency_model, algorithm, rounds,
                                          args.epochs, args.seed, args.population, args.sample,
                                          in_flight=max(4, args.workers), runtime_code_bytes=runtime_code_bytes(board))
                for algorithm in ALGORITHMS}

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        run = lambda algorithm: run_one(settings[algorithm], root / algorithm, workers, args)  # noqa: E731
        if args.parallel:
            with ThreadPoolExecutor(len(ALGORITHMS)) as threads:
                runs = dict(zip(ALGORITHMS, threads.map(run, ALGORITHMS)))
        else:
            runs = {algorithm: run(algorithm) for algorithm in ALGORITHMS}
        results = {algorithm: report for algorithm, (report, _) in runs.items()}
        if args.verify_board:  # None: no candidate finished within the budget
            aging = runs["aging"][1]
            results["aging"]["verification"] = verify(root / "aging", aging, bounds, args) if aging else None
    print(json.dumps({"dataset": args.dataset, "board": board.name, "bounds": bounds.__dict__, "rounds": rounds,
                      "minutes_budget": args.minutes, "parallel": args.parallel, "epochs": args.epochs,
                      "workers": args.workers, "workers_per_algorithm": workers, "seed": args.seed, **results},
                     indent=1))


def run_one(settings: SearchSettings, out: Path, workers: int, args) -> tuple[dict, dict]:
    """One algorithm's search to its budget: its report, and the candidates that finished within it."""
    bounds = settings.bounds
    budget = float("inf") if args.minutes is None else args.minutes * 60  # seconds, from opening the search
    finished_at: dict[int, float] = {}
    start = time.perf_counter()
    with Search(settings, out) as search:
        left = budget - (time.perf_counter() - start)
        search.run(workers, progress=lambda c, done: finished_at.setdefault(c.round, time.perf_counter() - start),
                   seconds=None if args.minutes is None else left)
        minutes = (time.perf_counter() - start) / 60
        evaluated = search.candidates
        candidates = {r: c for r, c in evaluated.items() if finished_at[r] <= budget}
        winner = best(candidates, bounds)
        retrained = None
        if args.final_epochs and winner is not None:
            started = time.perf_counter()
            again = search.retrain(winner, args.final_epochs)
            retrained = {"epochs": args.final_epochs, "minutes": round((time.perf_counter() - started) / 60, 2),
                         **again.metrics()}
    counted_minutes = min(minutes, budget / 60)
    reached = {}
    for milestone in args.milestones:
        times = [finished_at[c.round] for c in candidates.values()
                 if feasible(c, bounds) and c.evaluation.test_accuracy >= milestone]
        reached[f"{milestone:.2f}"] = round(min(times) / 60, 2) if times else None
    report = {
        "minutes": round(counted_minutes, 2), "minutes_with_overrun": round(minutes, 2),
        "candidates": len(candidates), "candidates_evaluated": len(evaluated),
        "candidates_per_minute": round(len(candidates) / counted_minutes, 2),
        "feasible": sum(feasible(c, bounds) for c in candidates.values()),
        "best": None if winner is None else {"round": winner.round, **winner.evaluation.metrics(),
                                             "spec": winner.spec},
        "minutes_to_test_accuracy": reached,
        "retrained": retrained,
    }
    return report, candidates


def verify(out: Path, candidates: dict, bounds, args) -> dict:
    """The Pareto models of the search in `out` on --verify-board: predicted against measured latency (with
    the search's latency model, when it is that board's) and planned against reported arena."""
    from firmware_runner.collect import check_board
    from nas.closed_loop import check_front, summary
    from nas.objectives import LatencyEstimator

    board = get_board(args.verify_board)
    latency = LatencyEstimator(args.latency_model, get_board(args.board)) if args.latency_model else None
    backend = check_board(board)
    try:
        checks = check_front(out, candidates, bounds, board, args.db or out / "results.db", latency,
                             jobs=args.workers, backend=backend)
    finally:
        backend.close()
    return {"board": board.name, **summary(checks),
            "checks": [{"round": c.round, "status": c.status, "verified": c.verified,
                        "predicted_count": c.predicted_count, "measured_count": c.measured_count,
                        "latency_error_pct": None if c.latency_error is None else round(c.latency_error * 100, 2),
                        "planned_arena_bytes": c.planned_arena_bytes, "board_arena_bytes": c.board_arena_bytes}
                       for c in checks]}


if __name__ == "__main__":
    main()
