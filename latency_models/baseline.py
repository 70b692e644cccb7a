"""The MACs baseline every report shows beside the learned model: a model's count per inference as
a linear function of its total MACs (the proxy μNAS and MicroNets use), fitted on the same
training models.

It is fitted by least squares on relative error (weights 1/count²), the fit that minimises the
percentage errors it is judged by; plain least squares on counts would let the largest models
decide the line and leave small models far off."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from hwbench.costs import graph_cost
from hwbench.graph import Graph


class MacsBaseline(RegressorMixin, BaseEstimator):
    """count ≈ intercept_ + slope_ × MACs."""

    def fit(self, macs, totals) -> "MacsBaseline":
        macs, totals = np.asarray(macs, dtype=np.float64), np.asarray(totals, dtype=np.float64)
        w = 1.0 / np.maximum(totals, 1.0)
        design = np.column_stack([np.ones_like(macs), macs]) * w[:, None]
        (self.intercept_, self.slope_), *_ = np.linalg.lstsq(design, totals * w, rcond=None)
        self.intercept_, self.slope_ = float(self.intercept_), float(self.slope_)
        return self

    def predict(self, macs) -> np.ndarray:
        return self.intercept_ + self.slope_ * np.asarray(macs, dtype=np.float64)

    def predict_graph(self, graph: Graph) -> float:
        return float(self.predict([graph_cost(graph).macs])[0])
