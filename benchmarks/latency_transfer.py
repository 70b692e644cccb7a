"""Latency models transferred between emulated boards with few measurements; prints one JSON object.

    python benchmarks/latency_transfer.py [--boards B ...] [--train 1000] [--test 400] [--curve 5 10 20 50 100]
                                          [--draws 3] [--data out] [--jobs 2] [--no-collect]

For every ordered pair (prior board A, new board B) of the emulated boards (default: all of them):
the prior is A's latency model fitted on `--train` generated models (latency_data.py: the same
models and DBs latency_accuracy.py uses, collected when missing); on B, `n` models drawn at random
from B's training models (`--draws` different draws per n, seeded) are all B has. Three predictors
learn from those n models and are measured on B's `--test` held-out models (another seed):

- transferred: A's model transferred with the n models (latency_models/transfer.py);
- from scratch: a latency model fitted on the n models alone (none below 10 models: it refuses);
- the MACs baseline fitted on the n models.

Per pair and n: each predictor's held-out MAPE and share within ±5% / ±10% (the mean over draws)
and the worst draw's share within ±10%. The target: with 20 models, at least 95% of the held-out
models within ±10% for every pair (in every draw). The prior applied unchanged (no factor) is shown
at n = 0, and each board's own from-scratch model on all `--train` models beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwbench.boards import get_board  # noqa: E402
from latency_data import BoardData, add_data_options, board_data, log  # noqa: E402
from latency_models.artifact import Artifact  # noqa: E402
from latency_models.baseline import MacsBaseline  # noqa: E402
from latency_models.dataset import Dataset  # noqa: E402
from latency_models.metrics import accuracy  # noqa: E402
from latency_models.model import MIN_MODELS  # noqa: E402
from latency_models.training import fit_dataset  # noqa: E402

TARGET = {"models": 20, "within_10": 0.95}
KEYS = ("mape", "within_5", "within_10", "max_error")


def draws(train: Dataset, n: int, count: int) -> list[Dataset]:
    """`count` random subsets of n training models (seeded by n and the draw: the same for every
    prior, so predictors compare on the same models)."""
    return [train.subset(sorted(np.random.default_rng([n, d]).choice(len(train), n, replace=False)))
            for d in range(count)]


def summary(per_draw: list[dict]) -> dict:
    """The mean of each metric over the draws, and the worst draw's share within ±10%."""
    mean = {k: round(float(np.mean([m[k] for m in per_draw])), 4) for k in KEYS}
    return {**mean, "worst_draw_within_10": round(min(m["within_10"] for m in per_draw), 4)}


def from_scratch(board: BoardData, subsets: list[Dataset]) -> dict:
    """The from-scratch latency model and the MACs baseline fitted on each draw."""
    test = board.test
    baseline = [accuracy(test.totals, MacsBaseline().fit(s.macs, s.totals).predict(test.macs)) for s in subsets]
    row = {"baseline": summary(baseline)}
    if len(subsets[0]) < MIN_MODELS:
        row["from_scratch"] = f"refused: fewer than {MIN_MODELS} models"
    else:
        row["from_scratch"] = summary([fit_dataset(s, test).metrics["learned"] for s in subsets])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(parser, train=1000, test=400)
    parser.add_argument("--curve", type=int, nargs="+", default=[5, 10, 20, 50, 100],
                        help="models measured on the new board")
    parser.add_argument("--draws", type=int, default=3, help="random draws of the new board's models per size")
    args = parser.parse_args()
    curve = sorted(n for n in set(args.curve) if n <= args.train)

    boards, priors, own = {}, {}, {}
    for name in args.boards:
        board = boards[name] = board_data(get_board(name), Path(args.data), args.train, args.test, args.train_seed,
                                          args.test_seed, args.jobs, collect=not args.no_collect)
        result = fit_dataset(board.train, board.test, clock_hz=board.board.clock_hz)
        priors[name] = Artifact(result.model, result.metadata(), result.baseline)
        own[name] = {k: round(result.metrics["learned"][k], 4) for k in KEYS}
        log(f"{name}: prior fitted on {len(board.train)} models, held-out MAPE {own[name]['mape']:.3f}%")

    subsets = {name: {n: draws(board.train, n, args.draws) for n in curve} for name, board in boards.items()}
    scratch = {name: {n: from_scratch(board, subsets[name][n]) for n in curve} for name, board in boards.items()}
    pairs = []
    for b, new in boards.items():
        for a, prior in priors.items():
            if a == b:
                continue
            start = time.perf_counter()
            unchanged = accuracy(new.test.totals, prior.model.predict_many(new.test.graphs))
            points = [{"models": 0, "transferred": summary([unchanged])}]
            for n in curve:
                transferred = [fit_dataset(s, new.test, prior=prior).metrics["learned"] for s in subsets[b][n]]
                points.append({"models": n, "transferred": summary(transferred), **scratch[b][n]})
            at_target = next((p for p in points if p["models"] == TARGET["models"]), None)
            met = at_target is not None and at_target["transferred"]["worst_draw_within_10"] >= TARGET["within_10"]
            pairs.append({"prior": a, "board": b, "curve": points, "target_met": met})
            log(f"{a} -> {b}: " + ", ".join(f"{p['models']}: {p['transferred']['within_10']:.1%}" for p in points)
                + f" within ±10% ({time.perf_counter() - start:.0f} s)")

    print(json.dumps({
        "settings": {"train": args.train, "test": args.test, "draws": args.draws, "curve": curve,
                     "train_seed": args.train_seed, "held_out_seed": args.test_seed},
        "target": f"with {TARGET['models']} models on the new board, at least {TARGET['within_10']:.0%} of its "
                  f"held-out models within ±10% (every draw)",
        "boards": {name: {"runtime_hash": board.runtime_hash, "unit": board.train.unit,
                          "train_models": len(board.train), "held_out_models": len(board.test),
                          "own_model_on_all_train_models": own[name]} for name, board in boards.items()},
        "pairs": pairs,
        "pairs_meeting_the_target": sum(p["target_met"] for p in pairs), "pairs_total": len(pairs),
    }, indent=1))


if __name__ == "__main__":
    main()
