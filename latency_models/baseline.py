"""The MACs baseline every report shows beside the learned model: a model's count per inference as
a linear function of its total MACs (the proxy μNAS and MicroNets use), fitted on the same
training models.

The line is the one with the least mean absolute percentage error on the training models (a
linear program: scikit-learn's QuantileRegressor on relative residuals), so the baseline is judged
by the metric it was fitted for. Plain least squares on counts lets the largest models decide the
line: on generated models its held-out MAPE is several times worse (hundreds of percent on the
smallest models); least squares on relative error is in between."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import QuantileRegressor

from hwbench.costs import graph_cost
from hwbench.graph import Graph


class MacsBaseline(RegressorMixin, BaseEstimator):
    """count ≈ intercept_ + slope_ × MACs, minimising Σ |predicted - measured| / measured."""

    def fit(self, macs, totals) -> "MacsBaseline":
        macs, totals = np.asarray(macs, dtype=np.float64), np.maximum(np.asarray(totals, dtype=np.float64), 1.0)
        # |a + b·macs - y| / y = |a·(1/y) + b·(macs/y) - 1|: a median (L1) regression without intercept.
        design = np.column_stack([1.0 / totals, macs / totals])
        fitted = QuantileRegressor(quantile=0.5, alpha=0.0, fit_intercept=False, solver="highs").fit(
            design, np.ones(len(totals)))
        self.intercept_, self.slope_ = (float(v) for v in fitted.coef_)
        return self

    def predict(self, macs) -> np.ndarray:
        return self.intercept_ + self.slope_ * np.asarray(macs, dtype=np.float64)

    def predict_graph(self, graph: Graph) -> float:
        return float(self.predict([graph_cost(graph).macs])[0])
