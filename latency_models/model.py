"""The per-board latency model: one regressor per operator kind, each chosen by cross-validation
grouped by model, summed over a graph's layers, plus a fitted per-inference overhead.

    model = LatencyModel().fit(graphs, totals, layer_counts)
    model.predict(graph)            # predicted count per inference (float)
    model.predict_layers(graph)     # per graph op

The overhead is what the interpreter spends outside the layers (the invoke loop, its call): on the
hwbench runtime it is exactly a + b × (number of ops), so that is what is fitted. A kind with too
few layers in the training data (or none) is predicted by the GENERIC regressor, fitted on every
layer's generic features (element counts, MACs, bytes); `fallback_kinds(graph)` names such ops.

`to_state()` / `from_state()` turn a fitted model into JSON-able params and numpy arrays and back
(state.py): the form an artifact stores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold

from hwbench.errors import HwbenchError
from hwbench.graph import Graph, Op
from latency_models.features import (GENERIC, KINDS, SCHEMA_VERSION, FeatureCache, generic_features, graph_features,
                                     op_kind)
from latency_models.regressors import CANDIDATES, make_candidate, regressor_from_state
from latency_models.state import Part, nested, stored_array

MIN_MODELS = 10  # fewer training models than this cannot be cross-validated or trusted


@dataclass(frozen=True)
class KindReport:
    """How one operator kind was fitted: candidates' cross-validated errors and the choice."""

    kind: str
    layers: int
    models: int
    chosen: str
    cv_error: dict[str, float]  # candidate -> mean share of a model's count mispredicted (fraction)


# A difference in cross-validated error below this share of a model's count (0.05%) is no reason to
# take a more complex regressor: boosted corrections that won 0.007% on generated pointwise
# convolutions mispredicted the larger MLPerf Tiny ones by 2%, where the loop costs alone were exact.
NEGLIGIBLE_ERROR = 5e-4


class LatencyModel(BaseEstimator):
    """Per-layer regressors per operator kind + per-inference overhead; scikit-learn conventions
    (hyperparameters in the constructor, `fit` returns self, fitted state ends in `_`).

    candidates: the regressors (regressors.CANDIDATES) each kind chooses among.
    cv_folds: GroupKFold splits (by model) for the choice.
    min_layers: a kind with fewer training layers (or present in fewer than cv_folds models) is
        not given its own regressor; its ops fall back to GENERIC.
    fast_paths: whether the board takes the kernels' fast paths (hwbench.kernel_paths.fast_paths_for),
        which decides each layer's kind and features.
    """

    def __init__(self, candidates: Sequence[str] = CANDIDATES, cv_folds: int = 5, min_layers: int = 20,
                 random_state: int = 0, fast_paths: bool = True):
        self.candidates = candidates
        self.cv_folds = cv_folds
        self.min_layers = min_layers
        self.random_state = random_state
        self.fast_paths = fast_paths

    # ----------------------------------------------------------------------------------- fitting

    def fit(self, graphs: Sequence[Graph], totals, layer_counts: Sequence[Sequence[float]]) -> "LatencyModel":
        """graphs: the training models; totals: each one's measured count per inference;
        layer_counts: per graph, the measured count of each graph op (indexed by op index)."""
        totals = np.asarray(totals, dtype=np.float64)
        if len(graphs) != len(totals) or len(graphs) != len(layer_counts):
            raise ValueError("graphs, totals and layer_counts must have one entry per model")
        if len(graphs) < MIN_MODELS:
            raise HwbenchError(f"{len(graphs)} model(s) are too few to fit a latency model: collect at least "
                               f"{MIN_MODELS} (a few hundred give accurate models)")
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise ValueError(f"unknown candidate regressor(s) {unknown}; known: {', '.join(CANDIDATES)}")
        rows, n_ops, layer_sums = layer_rows(graphs, totals, layer_counts, self.fast_paths)
        self.regressors_: dict[str, BaseEstimator] = {}
        self.kind_reports_: dict[str, KindReport] = {}
        for kind, (X, y, groups, model_totals) in sorted(rows.items()):
            if kind == GENERIC or not self._cross_validates(y, groups):
                continue
            self.kind_reports_[kind], self.regressors_[kind] = self._choose(
                kind, X, y, groups, model_totals, self._from_scratch(kind))
        self.kind_reports_[GENERIC], self.regressors_[GENERIC] = self._choose(
            GENERIC, *rows[GENERIC], self._from_scratch(GENERIC))
        self.overhead_ = fitted_overhead(n_ops, totals - layer_sums)
        self._fitted_on(rows, n_ops)
        return self

    def _cross_validates(self, y, groups) -> bool:
        """Whether a kind has enough layers, in enough models, to choose its regressor by
        cross-validation."""
        return len(y) >= self.min_layers and len(np.unique(groups)) >= self.cv_folds

    def _from_scratch(self, kind: str) -> dict[str, Callable[[], BaseEstimator]]:
        """The candidate regressors of `kind`, unfitted, by name."""
        n_linear = KINDS[kind].n_linear
        return {name: partial(make_candidate, name, n_linear, self.random_state) for name in self.candidates}

    def _fitted_on(self, rows: dict, n_ops: np.ndarray) -> None:
        """Record what the model was fitted on."""
        self.n_models_ = len(n_ops)
        self.n_layers_ = int(n_ops.sum())
        self.layers_per_kind_ = {k: len(r[1]) for k, r in rows.items() if k != GENERIC}
        self.schema_version_ = SCHEMA_VERSION
        self._cache = FeatureCache(self.fast_paths)

    def _choose(self, kind: str, X, y, groups, model_totals, candidates: dict[str, Callable[[], BaseEstimator]]):
        """Cross-validate every candidate grouped by model; refit the best on all layers.

        The error of a candidate is the mean, over models, of Σ|predicted - measured| / the model's
        total for this kind's layers: the share of a model's latency the kind gets wrong."""
        folds = grouped_folds(groups, self.cv_folds)
        errors = {}
        for name, make in candidates.items():
            predicted = np.zeros_like(y)
            for train, test in folds:
                predicted[test] = make().fit(X[train], y[train]).predict(X[test])
            errors[name] = float(np.sum(np.abs(predicted - y) / model_totals) / len(np.unique(groups)))
        # The first candidate (the simplest) within 5% of the best, or within NEGLIGIBLE_ERROR of it: a
        # near-tie goes to the model that extrapolates and predicts faster.
        best = min(errors.values())
        chosen = next(name for name in candidates if errors[name] <= best * 1.05 + NEGLIGIBLE_ERROR)
        return KindReport(kind, len(y), len(np.unique(groups)), chosen, errors), candidates[chosen]().fit(X, y)

    # --------------------------------------------------------------------------------- predicting

    def predict_layers(self, graph: Graph) -> np.ndarray:
        """Predicted count of each graph op (indexed by op index)."""
        self._check_fitted()
        features = self._features(graph)
        out = np.empty(features.n_ops)
        regressors = self.regressors_
        for kind, (indices, X) in features.kinds.items():
            regressor = regressors.get(kind)
            if regressor is None:
                regressor, X = regressors[GENERIC], generic_features(graph, indices)
            out[indices] = regressor.predict(X)
        return out

    def predict(self, graph: Graph) -> float:
        """Predicted count per inference: Σ layers + overhead."""
        a, b = self.overhead_
        return float(self.predict_layers(graph).sum() + a + b * len(graph.ops))

    def predict_many(self, graphs: Sequence[Graph]) -> np.ndarray:
        return np.array([self.predict(g) for g in graphs])

    def overhead(self, graph: Graph) -> float:
        """The per-inference overhead predicted for this graph (outside every layer)."""
        a, b = self.overhead_
        return float(a + b * len(graph.ops))

    def fallback_kinds(self, graph: Graph) -> set[str]:
        """Operator kinds in `graph` (types, "TYPE.path" on a fast kernel path, features.py) that this
        model has no regressor of their own for; an operator type without features of its own by
        its type."""
        self._check_fitted()
        kinds = {(op.type, self.op_kind(graph, op)) for op in graph.ops}
        return {op_type if kind == GENERIC else kind for op_type, kind in kinds
                if kind == GENERIC or kind not in self.regressors_}

    def op_kind(self, graph: Graph, op: Op) -> str:
        """The kind (features.op_kind) of `op` on this model's board."""
        return op_kind(graph, op, self.fast_paths)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _features(self, graph: Graph):
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = self._cache = FeatureCache(self.fast_paths)
        return cache.get(graph)

    def _check_fitted(self) -> None:
        if not hasattr(self, "regressors_"):
            raise HwbenchError("this LatencyModel is not fitted: call fit() or LatencyModel.load(path)")

    def __getstate__(self):
        # For pickling between processes (model files are not pickles: see to_state).
        state = super().__getstate__()
        state.pop("_cache", None)  # weak references do not pickle; an unpickled model starts a new cache
        return state

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted model as JSON-able params and named float64/int64 arrays: the overhead
        (`overhead`: per inference, per op) and each kind's regressor under `regressors/<kind>/`."""
        self._check_fitted()
        params = {"hyperparameters": self._hyperparameters(),
                  "n_models": self.n_models_, "n_layers": self.n_layers_, "layers_per_kind": self.layers_per_kind_,
                  "feature_schema": self.schema_version_,
                  "kind_reports": {kind: asdict(report) for kind, report in self.kind_reports_.items()},
                  "regressors": {}}
        arrays = {"overhead": np.asarray(self.overhead_, dtype=np.float64)}
        for kind, regressor in self.regressors_.items():
            params["regressors"][kind], regressor_arrays = regressor.to_state()
            arrays.update(nested(f"regressors/{kind}", regressor_arrays))
        return params, arrays

    def _hyperparameters(self) -> dict:
        """The constructor's parameters as JSON."""
        return {**self.get_params(deep=False), "candidates": list(self.candidates)}

    @classmethod
    def from_state(cls, params: dict, arrays) -> "LatencyModel":
        """The fitted model `to_state` described; ValueError (or KeyError, TypeError) on a state
        this hwbench cannot use."""
        hyperparameters = params["hyperparameters"]
        model = cls(**{**hyperparameters, "candidates": tuple(hyperparameters["candidates"])})
        model.regressors_ = {}
        for kind, state in params["regressors"].items():
            if kind not in KINDS:
                raise ValueError(f"a regressor of unknown operator kind {kind!r}")
            regressor = regressor_from_state(state, Part(f"regressors/{kind}", arrays))
            if regressor.n_features_in_ != len(KINDS[kind].names):
                raise ValueError(f"the {kind} regressor takes {regressor.n_features_in_} features, not "
                                 f"{len(KINDS[kind].names)}")
            model.regressors_[kind] = regressor
        if GENERIC not in model.regressors_:
            raise ValueError(f"no {GENERIC} regressor")
        model.kind_reports_ = {kind: KindReport(**report) for kind, report in params["kind_reports"].items()}
        model.overhead_ = stored_array(arrays, "overhead", np.float64, (2,))
        model.n_models_, model.n_layers_ = int(params["n_models"]), int(params["n_layers"])
        model.layers_per_kind_ = {kind: int(n) for kind, n in params["layers_per_kind"].items()}
        model.schema_version_ = int(params["feature_schema"])
        model._cache = FeatureCache(model.fast_paths)
        return model

    # ----------------------------------------------------------------------------------- storing

    def save(self, path, metadata: dict) -> None:
        """Write the artifact (see latency_models.artifact)."""
        from latency_models.artifact import save_artifact

        save_artifact(self, metadata, path)

    @classmethod
    def load(cls, path, board: str | None = None) -> "LatencyModel":
        """Read an artifact; with `board`, refuse one fitted for another board. The artifact's
        metadata is in `.metadata_`."""
        from latency_models.artifact import load_artifact

        return load_artifact(path, board=board).model


def grouped_folds(groups, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs of a K-fold split by model: a model's layers never sit on both
    sides (layers of one model share its input size and style, so they would leak)."""
    groups = np.asarray(groups)
    n_splits = min(n_splits, len(np.unique(groups)))
    return list(GroupKFold(n_splits=n_splits).split(np.zeros(len(groups)), groups=groups))


def layer_rows(graphs: Sequence[Graph], totals: np.ndarray, layer_counts: Sequence[Sequence[float]], fast: bool):
    """The training layers per operator kind (on the fast kernel paths or the reference ones): {kind:
    (X, y, model index, model total) per layer}, GENERIC holding every layer with its generic
    features; and per model its op count and the sum of its layer counts."""
    per_kind: dict[str, tuple[list, list, list, list]] = {}
    n_ops, layer_sums = np.zeros(len(graphs)), np.zeros(len(graphs))

    def add(kind: str, X, y, m: int) -> None:
        rows = per_kind.setdefault(kind, ([], [], [], []))
        for column, values in zip(rows, (X, y, np.full(len(y), m), np.full(len(y), totals[m]))):
            column.append(values)

    for m, (graph, counts) in enumerate(zip(graphs, layer_counts)):
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (len(graph.ops),):
            raise ValueError(f"model {m} ({graph.name}): {counts.size} layer counts for {len(graph.ops)} ops")
        n_ops[m], layer_sums[m] = len(graph.ops), counts.sum()
        for kind, (indices, X) in graph_features(graph, fast).kinds.items():
            if kind != GENERIC:  # ops of unknown types: only in the GENERIC rows below
                add(kind, X, counts[indices], m)
        add(GENERIC, generic_features(graph, np.arange(len(graph.ops))), counts, m)
    rows = {kind: tuple(np.concatenate(column) for column in columns) for kind, columns in per_kind.items()}
    return rows, n_ops, layer_sums


def fitted_overhead(n_ops: np.ndarray, outside_layers: np.ndarray) -> np.ndarray:
    """[a, b] of the per-inference overhead a + b × ops, least squares on the count outside the
    layers (total - Σ layers)."""
    design = np.column_stack([np.ones(len(n_ops)), n_ops])
    overhead, *_ = np.linalg.lstsq(design, outside_layers, rcond=None)
    return overhead
