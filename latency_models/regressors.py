"""The candidate per-layer regressors, scikit-learn estimators a LatencyModel chooses among per
operator kind by cross-validation grouped by model.

Every candidate takes a kind's full feature matrix (features.py: the first `n_linear` columns are
loop trip counts, the rest descriptive parameters) and a layer's count as target, and fits for
*relative* error: a layer mispredicted by 5% is as bad in a small model as in a big one.

- `LoopCountRegressor`: count = trip counts · cost per trip, non-negative costs, least squares
  on relative error. Exact when the features mirror the kernel's loops; extrapolates to layers
  larger than any seen in training (real models often are).
- `BoostedLoopCountRegressor`: the above, times exp(a gradient-boosted correction on all features)
  for what the loop counts miss (data-dependent branches, remainders). The correction is bounded
  by what training saw, so it extrapolates as the linear part does.
- `LogForestRegressor`: a random forest on log features to log count, as nn-Meter does; cannot
  extrapolate beyond the counts it was trained on.
- `ScaledRegressor`: not a candidate of its own: another board's fitted regressor with its loop
  costs rescaled (one factor, or one per loop), what a latency model transferred from that board
  keeps (transfer.py). Every regressor gives its prediction as `loop_terms` for it to rescale.

`predict` must be cheap for a search (thousands of graphs a second, a few rows per call): the tree
ensembles are fitted with scikit-learn, then their public `tree_` arrays are stacked into one
`CompiledTrees` that walks all trees at once in numpy, with none of scikit-learn's per-call
validation and thread start-up (which costs milliseconds per call on a busy machine).

Every fitted candidate (and `CompiledTrees`) converts to and from plain data (`to_state` /
`from_state`, see state.py): that is how artifacts store them. `CANDIDATES` names the candidates,
`REGRESSORS` every regressor an artifact may hold.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

from latency_models.state import Part, nested, stored_array, stored_indices

_FLOOR = 1.0  # counts below one instruction (or cycle) are clipped to it before taking ratios and logs


def non_negative_least_squares(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin ||A x - b|| over x >= 0, by bounded-variable least squares: scipy's nnls (which
    LinearRegression(positive=True) calls) gives up ("maximum number of iterations") on some kinds
    with few, nearly collinear layers."""
    return lsq_linear(A, b, bounds=(0.0, np.inf), method="bvls").x


class LoopCountRegressor(RegressorMixin, BaseEstimator):
    """count ≈ X[:, :n_linear] @ coef_, coef_ ≥ 0 (when `positive`), fitted on relative error.

    loops: the columns (of the first n_linear) given a cost; the others cost nothing (None: all)."""

    name = "loop-linear"

    def __init__(self, n_linear: int = 1, positive: bool = True, loops=None):
        self.n_linear = n_linear
        self.positive = positive
        self.loops = loops

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        y = np.maximum(y, _FLOOR)
        loops = np.arange(self.n_linear) if self.loops is None else np.asarray(self.loops, dtype=np.int64)
        design = X[:, loops]
        # Columns scaled to unit size so the solver's tolerance means the same for every column.
        scale = np.maximum(np.abs(design).max(axis=0), 1.0)
        # Least squares on relative errors: each row divided by its count.
        rows, ones = design / scale / y[:, None], np.ones_like(y)
        coef = non_negative_least_squares(rows, ones) if self.positive else np.linalg.lstsq(rows, ones, rcond=None)[0]
        self.coef_ = np.zeros(self.n_linear)
        self.coef_[loops] = coef / scale
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=np.float64)[:, : self.n_linear] @ self.coef_

    def loop_terms(self, X):
        """The prediction as each loop's cost (trips × cost per trip) and a multiplier (here 1): the
        parts a transferred model rescales (ScaledRegressor)."""
        X = np.asarray(X, dtype=np.float64)
        return X[:, : self.n_linear] * self.coef_, np.ones(len(X))

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return _params(self), {"coef": self.coef_}

    @classmethod
    def from_state(cls, params: dict, arrays) -> "LoopCountRegressor":
        regressor = _unfitted(cls, params)
        if not 0 < regressor.n_linear <= regressor.n_features_in_:
            raise ValueError(f"{regressor.n_linear} linear features of {regressor.n_features_in_}")
        if regressor.loops is not None and not all(0 <= i < regressor.n_linear for i in regressor.loops):
            raise ValueError(f"loops {regressor.loops} outside the {regressor.n_linear} linear features")
        regressor.coef_ = stored_array(arrays, "coef", np.float64, (regressor.n_linear,))
        return regressor


class BoostedLoopCountRegressor(RegressorMixin, BaseEstimator):
    """LoopCountRegressor × exp(gradient boosting on log1p(all features) → log(y / linear))."""

    name = "loop-linear+boost"

    def __init__(self, n_linear: int = 1, n_estimators: int = 150, learning_rate: float = 0.05, max_depth: int = 3,
                 min_samples_leaf: int = 5, random_state: int = 0):
        self.n_linear = n_linear
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.maximum(np.asarray(y, dtype=np.float64), _FLOOR)
        self.linear_ = LoopCountRegressor(self.n_linear).fit(X, y)
        ratio = np.log(y / np.maximum(self.linear_.predict(X), _FLOOR))
        boost = GradientBoostingRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state).fit(_log(X), ratio)
        self.correction_ = CompiledTrees.from_gradient_boosting(boost, X.shape[1])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        return np.maximum(self.linear_.predict(X), _FLOOR) * np.exp(self.correction_.predict(_log(X)))

    def loop_terms(self, X):
        """The loop-linear part's loop costs, and the boosted correction as the multiplier."""
        X = np.asarray(X, dtype=np.float64)
        return self.linear_.loop_terms(X)[0], np.exp(self.correction_.predict(_log(X)))

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        (linear, linear_arrays), (correction, correction_arrays) = self.linear_.to_state(), self.correction_.to_state()
        return (_params(self, linear=linear, correction=correction),
                {**nested("linear", linear_arrays), **nested("correction", correction_arrays)})

    @classmethod
    def from_state(cls, params: dict, arrays) -> "BoostedLoopCountRegressor":
        regressor = _unfitted(cls, params)
        regressor.linear_ = LoopCountRegressor.from_state(params["linear"], Part("linear", arrays))
        regressor.correction_ = CompiledTrees.from_state(params["correction"], Part("correction", arrays))
        _same_features(regressor, regressor.linear_.n_features_in_, regressor.correction_.n_features)
        return regressor


class LogForestRegressor(RegressorMixin, BaseEstimator):
    """RandomForest on log1p(features) → log(count) (nn-Meter's per-kernel predictor)."""

    name = "log-forest"

    def __init__(self, n_estimators: int = 50, min_samples_leaf: int = 3, max_features: float = 0.5,
                 random_state: int = 0):
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.maximum(np.asarray(y, dtype=np.float64), _FLOOR)
        forest = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            random_state=self.random_state).fit(_log(X), np.log(y))
        self.forest_ = CompiledTrees.from_forest(forest, X.shape[1])
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.exp(self.forest_.predict(_log(np.asarray(X, dtype=np.float64))))

    def loop_terms(self, X):
        """No loops to tell apart: the whole prediction is one term."""
        return self.predict(X)[:, None], np.ones(len(X))

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        forest, forest_arrays = self.forest_.to_state()
        return _params(self, forest=forest), nested("forest", forest_arrays)

    @classmethod
    def from_state(cls, params: dict, arrays) -> "LogForestRegressor":
        regressor = _unfitted(cls, params)
        regressor.forest_ = CompiledTrees.from_state(params["forest"], Part("forest", arrays))
        _same_features(regressor, regressor.forest_.n_features)
        return regressor


class ScaledRegressor(RegressorMixin, BaseEstimator):
    """Another board's fitted regressor with its costs rescaled for this board: what a transferred
    latency model (transfer.py) keeps of the prior board's regressor for a kind.

    The prior's prediction is a sum of loop costs times a multiplier (`loop_terms`); this board
    runs the same loops, each body built for another core. With `ridge` None, one factor (fitted on
    relative error) scales every loop the training layers run; with a number, each loop gets its own
    non-negative factor, pulled toward that one factor (a factor's squared deviation from it costs
    `ridge` times a layer's squared relative error). A loop the training layers never run (a float
    input's conversion, say, when they all took int8) says nothing of its cost here: it takes
    `unseen` (None: the one factor too; a list: a factor per loop)."""

    name = "scaled-prior"

    def __init__(self, prior: BaseEstimator | None = None, ridge: float | None = None, unseen: float | None = None):
        self.prior = prior
        self.ridge = ridge
        self.unseen = unseen

    @classmethod
    def fixed(cls, prior: BaseEstimator, scale) -> "ScaledRegressor":
        """Fitted without data: the prior's prediction times `scale` (one factor, or one per loop)."""
        return cls(prior)._with(np.atleast_1d(np.asarray(scale, dtype=np.float64)))

    def fit(self, X, y):
        terms, multiplier = self.prior.loop_terms(np.asarray(X, dtype=np.float64))
        y = np.maximum(np.asarray(y, dtype=np.float64), _FLOOR)
        columns = terms * multiplier[:, None]
        one = relative_scale(columns.sum(axis=1), y)
        seen = (columns > 0).any(axis=0)
        factors = np.where(seen, one, one if self.unseen is None else self.unseen)
        if self.ridge is not None and seen.any():
            # Relative residuals, plus one row per seen loop pulling its factor toward the one factor.
            k, weight = int(seen.sum()), np.sqrt(self.ridge)
            design = np.vstack([columns[:, seen] / y[:, None], weight * np.eye(k)])
            target = np.concatenate([np.ones(len(y)), np.full(k, weight * one)])
            factors[seen] = non_negative_least_squares(design, target)
        return self._with(factors)

    def _with(self, factors: np.ndarray) -> "ScaledRegressor":
        self.factors_, self.n_features_in_ = factors.astype(np.float64), self.prior.n_features_in_
        return self

    def loop_terms(self, X):
        terms, multiplier = self.prior.loop_terms(X)
        return terms * self.factors_, multiplier

    def predict(self, X):
        terms, multiplier = self.loop_terms(X)
        return terms.sum(axis=1) * multiplier

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        prior, prior_arrays = self.prior.to_state()
        return ({"regressor": self.name, "hyperparameters": {"ridge": self.ridge, "unseen": self.unseen},
                 "n_features_in": self.n_features_in_, "prior": prior},
                {"factors": self.factors_, **nested("prior", prior_arrays)})

    @classmethod
    def from_state(cls, params: dict, arrays) -> "ScaledRegressor":
        regressor = _unfitted(cls, params)
        regressor.prior = regressor_from_state(params["prior"], Part("prior", arrays))
        _same_features(regressor, regressor.prior.n_features_in_)
        loops = regressor.prior.loop_terms(np.zeros((1, regressor.n_features_in_)))[0].shape[1]
        factors = stored_array(arrays, "factors", np.float64, (None,))
        if factors.size not in (1, loops) or not (np.isfinite(factors).all() and (factors >= 0).all()):
            raise ValueError(f"a {cls.name!r} regressor's factors are not 1 or {loops} non-negative numbers")
        regressor.factors_ = factors
        return regressor


def relative_scale(predicted, measured) -> float:
    """The factor s minimising Σ ((s × predicted - measured) / measured)²: every layer counts by its
    relative error, as the regressors are fitted."""
    ratio = np.maximum(np.asarray(predicted, dtype=np.float64), _FLOOR) / np.maximum(
        np.asarray(measured, dtype=np.float64), _FLOOR)
    return float(ratio.sum() / (ratio**2).sum())


def median_ratio(predicted, measured) -> float:
    """The median of measured / predicted (both clipped to one instruction): a factor that the few
    layers scaling apart from the rest do not move."""
    return float(np.median(np.maximum(np.asarray(measured, dtype=np.float64), _FLOOR)
                           / np.maximum(np.asarray(predicted, dtype=np.float64), _FLOOR)))


class CompiledTrees:
    """A sum of regression trees, base + scale * Σ tree(x), as flat arrays walked in numpy.

    Built from fitted scikit-learn trees' public `tree_` arrays; a leaf points to itself, so walking
    every tree `depth` steps lands each row on its leaf. Inputs are compared as float32, as
    scikit-learn's trees do, so predictions match theirs.

    The arrays, one entry per node of all trees: `feature` (int64: the input column a node tests),
    `threshold` (float64: go left when x[feature] <= threshold; +inf at leaves), `child` (int64,
    two per node: child[2n + 1] the left child, child[2n] the right one), `value` (float64: a
    leaf's output), and `roots` (int64: each tree's root node)."""

    def __init__(self, feature: np.ndarray, threshold: np.ndarray, child: np.ndarray, value: np.ndarray,
                 roots: np.ndarray, depth: int, base: float, scale: float, n_features: int):
        self.feature, self.threshold, self.child, self.value, self.roots = feature, threshold, child, value, roots
        self.depth, self.base, self.scale, self.n_features = int(depth), float(base), float(scale), int(n_features)

    @classmethod
    def from_trees(cls, trees, base: float, scale: float, n_features: int) -> "CompiledTrees":
        """From fitted scikit-learn `tree_` objects."""
        feature, threshold, left, right, value, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for tree in trees:
            n = tree.node_count
            leaf = tree.children_left < 0
            own = np.arange(n) + offset
            roots.append(offset)
            feature.append(np.where(leaf, 0, tree.feature))
            threshold.append(np.where(leaf, np.inf, tree.threshold))
            left.append(np.where(leaf, own, tree.children_left + offset))
            right.append(np.where(leaf, own, tree.children_right + offset))
            value.append(tree.value[:, 0, 0])
            offset += n
            depth = max(depth, tree.max_depth)
        # child[2 * node + 1] is the left child, child[2 * node] the right one: one gather a step.
        child = np.column_stack([np.concatenate(right), np.concatenate(left)]).ravel()
        return cls(np.concatenate(feature).astype(np.intp), np.concatenate(threshold).astype(np.float64),
                   child.astype(np.intp), np.concatenate(value).astype(np.float64), np.array(roots, dtype=np.intp),
                   depth, base, scale, n_features)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_starts", None)
        return state

    @classmethod
    def from_gradient_boosting(cls, model: GradientBoostingRegressor, n_features: int) -> "CompiledTrees":
        base = float(model.init_.predict(np.zeros((1, n_features)))[0])
        return cls.from_trees([e.tree_ for e in model.estimators_[:, 0]], base, model.learning_rate, n_features)

    @classmethod
    def from_forest(cls, model: RandomForestRegressor, n_features: int) -> "CompiledTrees":
        return cls.from_trees([e.tree_ for e in model.estimators_], 0.0, 1.0 / len(model.estimators_), n_features)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return ({"depth": self.depth, "base": self.base, "scale": self.scale, "n_features": self.n_features},
                {"feature": self.feature.astype(np.int64), "threshold": self.threshold,
                 "child": self.child.astype(np.int64), "value": self.value, "roots": self.roots.astype(np.int64)})

    @classmethod
    def from_state(cls, params: dict, arrays) -> "CompiledTrees":
        threshold = stored_array(arrays, "threshold", np.float64, (None,))
        nodes, depth, n_features = threshold.size, int(params["depth"]), int(params["n_features"])
        if not (nodes and 0 <= depth <= nodes and n_features > 0):
            raise ValueError(f"trees of {nodes} nodes, depth {depth}, {n_features} features")
        # Indices the walk follows stay inside the arrays, so a loaded model cannot fail in predict.
        feature = stored_indices(arrays, "feature", (nodes,), n_features)
        child = stored_indices(arrays, "child", (2 * nodes,), nodes)
        roots = stored_indices(arrays, "roots", (None,), nodes)
        value = stored_array(arrays, "value", np.float64, (nodes,))
        if not roots.size:
            raise ValueError("no trees")
        return cls(feature, threshold, child, value, roots, depth, params["base"], params["scale"], n_features)

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        rows, trees = X.shape[0], self.roots.size
        flat = X.ravel()
        start = self.__dict__.setdefault("_starts", {}).get(rows)
        if start is None:  # (each row's offset in `flat`, each tree's root), per row: made once per row count
            start = self._starts[rows] = (np.repeat(np.arange(rows, dtype=np.intp) * X.shape[1], trees),
                                          np.tile(self.roots, rows))
        row_start, node = start
        for _ in range(self.depth):
            go_left = flat[row_start + self.feature[node]] <= self.threshold[node]
            node = self.child[2 * node + go_left]
        return self.base + self.scale * self.value[node].reshape(rows, trees).sum(axis=1)


def _log(X: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(X, 0.0))


def _params(regressor: BaseEstimator, **parts) -> dict:
    """A fitted candidate's JSON-able params: its name, hyperparameters, feature count, parts."""
    return {"regressor": regressor.name, "hyperparameters": regressor.get_params(),
            "n_features_in": regressor.n_features_in_, **parts}


def _unfitted(cls, params: dict):
    """The candidate `params` describe, with its hyperparameters and feature count."""
    if params["regressor"] != cls.name:
        raise ValueError(f"a {params['regressor']!r} regressor where {cls.name!r} was expected")
    regressor = cls(**params["hyperparameters"])
    regressor.n_features_in_ = int(params["n_features_in"])
    return regressor


def _same_features(regressor: BaseEstimator, *counts: int) -> None:
    if any(n != regressor.n_features_in_ for n in counts):
        raise ValueError(f"parts of a {regressor.name!r} regressor see {counts} features, not "
                         f"{regressor.n_features_in_}")


def regressor_from_state(params: dict, arrays) -> BaseEstimator:
    """The fitted candidate `to_state` described (its name is in params["regressor"])."""
    name = params["regressor"]
    if name not in REGRESSORS:
        raise ValueError(f"unknown regressor {name!r}")
    return REGRESSORS[name].from_state(params, arrays)


def make_candidate(name: str, n_linear: int, random_state: int = 0) -> BaseEstimator:
    """A fresh, unfitted candidate by name."""
    if name == "loop-linear":
        return LoopCountRegressor(n_linear=n_linear)
    if name == "loop-linear+boost":
        return BoostedLoopCountRegressor(n_linear=n_linear, random_state=random_state)
    if name == "log-forest":
        return LogForestRegressor(random_state=random_state)
    raise ValueError(f"unknown candidate regressor {name!r}; known: {', '.join(CANDIDATES)}")


# The candidates a kind is fitted with from scratch, simplest first; and every regressor a model file may hold.
CANDIDATES = tuple(cls.name for cls in (LoopCountRegressor, BoostedLoopCountRegressor, LogForestRegressor))
REGRESSORS = {cls.name: cls for cls in (LoopCountRegressor, BoostedLoopCountRegressor, LogForestRegressor,
                                        ScaledRegressor)}
