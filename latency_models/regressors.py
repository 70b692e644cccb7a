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

`predict` must be cheap for a search (thousands of graphs a second, a few rows per call): the tree
ensembles are fitted with scikit-learn, then their public `tree_` arrays are stacked into one
`CompiledTrees` that walks all trees at once in numpy, with none of scikit-learn's per-call
validation and thread start-up (which costs milliseconds per call on a busy machine).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression

_FLOOR = 1.0  # counts below one instruction (or cycle) are clipped to it before taking ratios and logs


class LoopCountRegressor(RegressorMixin, BaseEstimator):
    """count ≈ X[:, :n_linear] @ coef_, coef_ ≥ 0 (when `positive`), fitted on relative error."""

    def __init__(self, n_linear: int = 1, positive: bool = True):
        self.n_linear = n_linear
        self.positive = positive

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        y = np.maximum(y, _FLOOR)
        design = X[:, : self.n_linear]
        # Columns scaled to unit size so the solver's tolerance means the same for every column.
        self.scale_ = np.maximum(np.abs(design).max(axis=0), 1.0)
        fitted = LinearRegression(fit_intercept=False, positive=self.positive).fit(
            design / self.scale_, y, sample_weight=1.0 / y**2)
        self.coef_ = fitted.coef_ / self.scale_
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=np.float64)[:, : self.n_linear] @ self.coef_


class BoostedLoopCountRegressor(RegressorMixin, BaseEstimator):
    """LoopCountRegressor × exp(gradient boosting on log1p(all features) → log(y / linear))."""

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


class LogForestRegressor(RegressorMixin, BaseEstimator):
    """RandomForest on log1p(features) → log(count) (nn-Meter's per-kernel predictor)."""

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


class CompiledTrees:
    """A sum of regression trees, base + scale * Σ tree(x), as flat arrays walked in numpy.

    Built from fitted scikit-learn trees' public `tree_` arrays; a leaf points to itself, so walking
    every tree `depth` steps lands each row on its leaf. Inputs are compared as float32, as
    scikit-learn's trees do, so predictions match theirs."""

    def __init__(self, trees, base: float, scale: float, n_features: int):
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
        self.feature = np.concatenate(feature).astype(np.intp)
        self.threshold = np.concatenate(threshold).astype(np.float64)
        # child[2 * node + 1] is the left child, child[2 * node] the right one: one gather a step.
        self.child = np.column_stack([np.concatenate(right), np.concatenate(left)]).ravel().astype(np.intp)
        self.value = np.concatenate(value).astype(np.float64)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = int(depth)
        self.base, self.scale, self.n_features = float(base), float(scale), int(n_features)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_starts", None)
        return state

    @classmethod
    def from_gradient_boosting(cls, model: GradientBoostingRegressor, n_features: int) -> "CompiledTrees":
        base = float(model.init_.predict(np.zeros((1, n_features)))[0])
        return cls([e.tree_ for e in model.estimators_[:, 0]], base, model.learning_rate, n_features)

    @classmethod
    def from_forest(cls, model: RandomForestRegressor, n_features: int) -> "CompiledTrees":
        return cls([e.tree_ for e in model.estimators_], 0.0, 1.0 / len(model.estimators_), n_features)

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


def make_candidate(name: str, n_linear: int, random_state: int = 0) -> BaseEstimator:
    """A fresh, unfitted candidate by name."""
    if name == "loop-linear":
        return LoopCountRegressor(n_linear=n_linear)
    if name == "loop-linear+boost":
        return BoostedLoopCountRegressor(n_linear=n_linear, random_state=random_state)
    if name == "log-forest":
        return LogForestRegressor(random_state=random_state)
    raise ValueError(f"unknown candidate regressor {name!r}; known: {', '.join(CANDIDATES)}")


CANDIDATES = ("loop-linear", "loop-linear+boost", "log-forest")
