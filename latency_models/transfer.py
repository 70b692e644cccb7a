"""A latency model for a new board started from another board's (the prior), for when the new board
has few measurements (a real board takes seconds per model to flash and run).

    model = TransferredLatencyModel(prior=LatencyModel.load("an386.latmodel"))
    model.fit(graphs, totals, layer_counts)    # a few models measured on the new board

Both boards run the same C kernels, built for another core: a layer's count on the new board is
the prior's loop costs (trips × cost per trip, its loop-linear part) each times a factor of the new
core — the inner MAC loop may get cheaper while the requantization gets dearer — times the prior's
data-dependent correction. So the fitted state is the prior's regressors plus, per kind, only what
the new measurements support (ScaledRegressor):

- a kind with new layers in two models or more: grouped cross-validation (as a from-scratch fit
  chooses its regressors) chooses among one factor for the kind, a factor per loop pulled toward it
  with each of `ridges` (strongest first), and, when the kind has the layers and models a
  from-scratch fit needs (`min_layers`, `cv_folds`), the from-scratch candidates; a near-tie goes to
  the first, the most constrained;
- a kind with new layers in one model: one factor, fitted on them;
- a loop that no new layer runs (e.g. a QUANTIZE's float input path, when the new layers all took
  int8: on a core without an FPU the two paths scale very differently) takes the global factor;
- a kind the prior has but the new models lack: the prior's regressor times the global factor (one
  factor fitted on every new layer against the prior's prediction of it); the GENERIC fallback too;
- a kind the new models have but the prior lacks (a kernel path the prior's board does not take:
  the reference loops on an M0 or M3, the fast paths on a core with the DSP extension): its own
  from-scratch regressor when it cross-validates, else the simplest one (its loops' costs, which
  the layers of a few models fix), else (layers in one model only) the scaled GENERIC fallback;
- the per-inference overhead a + b × ops: fitted on the new models (it is exactly linear), or the
  prior's times the global factor when their op counts cannot separate a from b.

Fitted, it is a `LatencyModel` whose regressors include `ScaledRegressor`s (which hold the prior's
regressors): it predicts, saves and loads as any latency model (a loaded one is a `LatencyModel`);
`summary()` is what its model file's metadata says of the transfer.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np

from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from latency_models.features import GENERIC
from latency_models.model import KindReport, LatencyModel, fitted_overhead, layer_rows
from latency_models.regressors import CANDIDATES, ScaledRegressor, relative_scale

ONE_FACTOR, PER_LOOP = "scaled-prior", "loop-scaled-prior"  # how a kind's report names the candidates
RIDGES = (0.1, 0.01, 0.0001)


class TransferredLatencyModel(LatencyModel):
    """A LatencyModel fitted as the prior's regressors with rescaled costs (see the module).

    prior: a fitted LatencyModel of another board (or of the same board under an older runtime).
    ridges: the per-loop rescalings tried beside one factor (ScaledRegressor's `ridge`), most
        constrained first.
    The other hyperparameters are LatencyModel's, for the kinds that can be refitted."""

    def __init__(self, prior: LatencyModel | None = None, ridges: Sequence[float] = RIDGES,
                 candidates: Sequence[str] = CANDIDATES, cv_folds: int = 5, min_layers: int = 20,
                 random_state: int = 0, fast_paths: bool = True):
        super().__init__(candidates, cv_folds, min_layers, random_state, fast_paths)
        self.prior = prior
        self.ridges = ridges

    def fit(self, graphs: Sequence[Graph], totals, layer_counts: Sequence[Sequence[float]]) -> "TransferredLatencyModel":
        """graphs, totals, layer_counts: the new board's measured models, as for LatencyModel.fit
        (one model is enough)."""
        prior = self.prior
        if prior is None or not hasattr(prior, "regressors_"):
            raise HwbenchError("a transferred latency model needs a fitted prior latency model")
        totals = np.asarray(totals, dtype=np.float64)
        if not len(graphs) or len(graphs) != len(totals) or len(graphs) != len(layer_counts):
            raise ValueError("graphs, totals and layer_counts must have one entry per model, and at least one")
        rows, n_ops, layer_sums = layer_rows(graphs, totals, layer_counts, self.fast_paths)
        self.scale_ = relative_scale(np.concatenate([prior.predict_layers(g) for g in graphs]),
                                     np.concatenate(layer_counts))
        self.regressors_ = {GENERIC: ScaledRegressor.fixed(prior.regressors_[GENERIC], self.scale_)}
        self.kind_reports_: dict[str, KindReport] = {}
        for kind in sorted((set(prior.regressors_) | set(rows)) - {GENERIC}):
            fitted = self._fit_kind(kind, rows.get(kind))
            if fitted is not None:
                self.kind_reports_[kind], self.regressors_[kind] = fitted
        self.overhead_refitted_ = len(np.unique(n_ops)) >= 2  # else a and b cannot be told apart
        self.overhead_ = fitted_overhead(n_ops, totals - layer_sums) if self.overhead_refitted_ \
            else prior.overhead_ * self.scale_
        self._fitted_on(rows, n_ops)
        return self

    def _fit_kind(self, kind: str, rows):
        """(report, regressor) of one kind from its new layers `rows` (None: it has none), or None when
        neither the prior nor the new layers can give it a regressor of its own."""
        prior = self.prior.regressors_.get(kind)
        if rows is None:
            return KindReport(kind, 0, 0, ONE_FACTOR, {}), ScaledRegressor.fixed(prior, self.scale_)
        X, y, groups, model_totals = rows
        candidates = {} if prior is None else {
            ONE_FACTOR: partial(ScaledRegressor, prior, unseen=self.scale_),
            **{f"{PER_LOOP} (ridge {ridge:g})": partial(ScaledRegressor, prior, ridge, self.scale_)
               for ridge in self.ridges}}
        if self._cross_validates(y, groups):
            candidates.update(self._from_scratch(kind))
        elif prior is None:
            if len(np.unique(groups)) < 2:  # one model's layers fix no loop costs: the scaled GENERIC fallback
                return None
            # Too few layers to choose: the simplest candidate, whose loop costs a few models' layers fix.
            simplest = self._from_scratch(kind)[CANDIDATES[0]]
            return KindReport(kind, len(y), len(np.unique(groups)), CANDIDATES[0], {}), simplest().fit(X, y)
        elif len(np.unique(groups)) < 2:  # one model: nothing to cross-validate with
            return KindReport(kind, len(y), 1, ONE_FACTOR, {}), candidates[ONE_FACTOR]().fit(X, y)
        return self._choose(kind, X, y, groups, model_totals, candidates)

    def summary(self) -> dict:
        """What was fitted of the prior: the global factor (kinds without new layers, GENERIC), per
        kind the factors applied to the prior's regressor (one, or one per loop), the kinds refitted
        from scratch, and whether the overhead was refitted."""
        self._check_fitted()
        scaled = {kind: r.factors_.tolist() for kind, r in self.regressors_.items() if isinstance(r, ScaledRegressor)}
        return {"global_scale": self.scale_, "factors": scaled,
                "refitted": sorted(kind for kind in self.regressors_ if kind not in scaled),
                "overhead_refitted": self.overhead_refitted_}

    def _hyperparameters(self) -> dict:
        # The prior lives on in the scaled regressors; a model file names it in its metadata.
        return {name: value for name, value in super()._hyperparameters().items() if name not in ("prior", "ridges")}
