"""What `hwbench fit` does, as a library call: read a board's verified measurements from a results
DB, hold out a share of the models, fit the latency model and the MACs baseline on the rest, and
measure both on the held-out models.

    result = fit_from_db("results.db", "mps2-an386", test_fraction=0.2, seed=0)
    result.save("an386.latmodel")

With `prior` (another board's latency-model file, loaded), the model is transferred from it
(transfer.py): a few models of the new board are enough, and the file's metadata names the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hwbench.boards import get_board
from hwbench.errors import HwbenchError
from hwbench.kernel_paths import fast_paths_for
from latency_models.artifact import Artifact, save_artifact
from latency_models.baseline import MacsBaseline
from latency_models.dataset import Dataset, load_dataset
from latency_models.metrics import accuracy, per_operator
from latency_models.model import MIN_MODELS, LatencyModel
from latency_models.transfer import TransferredLatencyModel


@dataclass
class FitResult:
    model: LatencyModel
    baseline: MacsBaseline
    train: Dataset
    test: Dataset
    clock_hz: int | None
    test_fraction: float
    seed: int
    metrics: dict = field(default_factory=dict)  # "learned" / "baseline" -> accuracy() on the test models
    per_operator: list[dict] = field(default_factory=list)
    test_predicted: np.ndarray | None = None
    test_baseline: np.ndarray | None = None
    prior: Artifact | None = None  # the latency model this one was transferred from

    def metadata(self) -> dict:
        """The artifact's metadata (see latency_models.artifact)."""
        model = self.model
        return {
            "board": self.train.board, "unit": self.train.unit, "runtime_hash": self.train.runtime_hash,
            "clock_hz": self.clock_hz, "n_models": model.n_models_, "n_layers": model.n_layers_,
            "layers_per_kind": model.layers_per_kind_,
            "regressors": {k: {"chosen": r.chosen, "layers": r.layers, "models": r.models,
                               "cv_error_percent": {c: e * 100 for c, e in r.cv_error.items()}}
                           for k, r in model.kind_reports_.items()},
            "overhead": {"per_inference": float(model.overhead_[0]), "per_op": float(model.overhead_[1])},
            "baseline": {"intercept": self.baseline.intercept_, "slope": self.baseline.slope_},
            "test_fraction": self.test_fraction, "seed": self.seed, "n_test_models": len(self.test),
            "held_out": self.metrics, "per_operator": self.per_operator,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **({"transfer": {"prior": prior_identity(self.prior), **model.summary()}} if self.prior else {}),
        }

    def save(self, path: str | Path) -> None:
        save_artifact(self.model, self.metadata(), path)


def fit_dataset(train: Dataset, test: Dataset | None = None, clock_hz: int | None = None, test_fraction: float = 0.0,
                seed: int = 0, model: LatencyModel | None = None, prior: Artifact | None = None,
                fast_paths: bool | None = None) -> FitResult:
    """Fit the latency model (transferred from `prior` when given) and the baseline on `train`;
    measure both on `test` when given. `fast_paths`: whether the board takes the kernels' fast paths
    (hwbench.kernel_paths.fast_paths_for; None: looked up by the bundled board's name)."""
    if fast_paths is None:
        fast_paths = fast_paths_for(get_board(train.board))
    if prior is not None:
        check_prior(prior, train)
        model = model or TransferredLatencyModel(prior.model, random_state=seed)
    if len(train) < min_models(prior):
        raise HwbenchError(f"{len(train)} training model(s) of board {train.board} are too few to fit a latency "
                           f"model: collect at least {min_models(prior)} (a few hundred give accurate models)")
    model = (model or LatencyModel(random_state=seed)).set_params(fast_paths=fast_paths)
    model = model.fit(train.graphs, train.totals, train.layer_counts)
    baseline = MacsBaseline().fit(train.macs, train.totals)
    test = test if test is not None else train.subset([])
    result = FitResult(model, baseline, train, test, clock_hz, test_fraction, seed, prior=prior)
    if len(test):
        result.test_predicted = model.predict_many(test.graphs)
        result.test_baseline = baseline.predict(test.macs)
        result.metrics = {"learned": accuracy(test.totals, result.test_predicted),
                          "baseline": accuracy(test.totals, result.test_baseline)}
        result.per_operator = per_operator(model, test.graphs, test.layer_counts, test.totals)
    return result


def fit_from_db(db: str | Path, board: str, test_fraction: float = 0.2, seed: int = 0,
                clock_hz: int | None = None, runtime_hash: str | None = None,
                prior: Artifact | None = None, fast_paths: bool | None = None) -> FitResult:
    """Train on the DB's verified measurements of `board`, holding out `test_fraction` of the
    models (split by model, seeded) to measure accuracy; transferred from `prior` when given."""
    if not 0.0 <= test_fraction < 1.0:
        raise HwbenchError(f"--test-fraction must be at least 0 and below 1, not {test_fraction}")
    data = load_dataset(db, board, runtime_hash)
    train, test = data.split(test_fraction, seed)
    if len(train) < min_models(prior):
        others = f"; {data.ignored['another runtime']} other measurement(s) are of older runtimes" \
            if "another runtime" in data.ignored else ""
        raise HwbenchError(f"{db}: {len(data)} verified model(s) of board {board} with runtime {data.runtime_hash}, "
                           f"{len(train)} left for training after holding out {test_fraction:g}: too few to fit a "
                           f"latency model (need {min_models(prior)}, a few hundred are better){others}; collect more "
                           f"with hwbench collect --board {board} --db {db}")
    return fit_dataset(train, test, clock_hz, test_fraction, seed, prior=prior, fast_paths=fast_paths)


def min_models(prior: Artifact | None) -> int:
    """Training models needed: a transferred model learns from one, a new one needs MIN_MODELS."""
    return 1 if prior is not None else MIN_MODELS


def check_prior(prior: Artifact, data: Dataset) -> None:
    """Refuse a prior whose counts are in another unit than the new board's (cycles are not
    instructions: no factor per kind can be trusted to convert them)."""
    if prior.unit != data.unit:
        raise HwbenchError(f"the prior latency model (board {prior.board}) counts {prior.unit}, but board "
                           f"{data.board} is measured in {data.unit}: a prior must count in the new board's unit")


def prior_identity(prior: Artifact) -> dict:
    """What a transferred model's metadata says of its prior: its board, unit, runtime, training
    size, creation time and (when read from a file) the file's sha256."""
    metadata = prior.metadata
    return {**{k: metadata.get(k) for k in ("board", "unit", "runtime_hash", "n_models", "created",
                                            "hwbench_version")}, "sha256": prior.sha256}
