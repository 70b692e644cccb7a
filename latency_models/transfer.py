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
  int8) takes the global factor: the median ratio of the new layers' counts to the prior's
  predictions, over the layers that run the kernel path the prior's board runs; a float loop
  (features.py) takes the float factor, the same median over the new layers that are mostly float
  loops (on a core without an FPU float arithmetic is library calls: it scales apart);
- a kind the prior has but the new models lack: the prior's regressor with those factors; the
  GENERIC fallback times the global factor;
- a kind the new models have but the prior lacks (a kernel path the prior's board does not take:
  the reference loops on an M0 or M3, the fast paths on a core with the DSP extension), in two
  models or more: the costs of its principal loops (of all its loops, when it declares none), or
  when it has the layers and models a from-scratch fit needs, the one grouped cross-validation
  chooses among those and the from-scratch candidates; in one model only: the scaled GENERIC
  fallback;
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
from latency_models.features import GENERIC, KINDS
from latency_models.model import KindReport, LatencyModel, fitted_overhead, layer_rows
from latency_models.regressors import CANDIDATES, LoopCountRegressor, ScaledRegressor, median_ratio

# How a kind's report names the candidates.
ONE_FACTOR, PER_LOOP, PRINCIPAL = "scaled-prior", "loop-scaled-prior", "loop-linear (principal loops)"
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
        self.scale_ = self._global_scale(graphs, layer_counts)
        self.float_scale_ = self._float_scale(rows)
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

    def _global_scale(self, graphs: Sequence[Graph], layer_counts) -> float:
        """One factor from the prior's counts to the new board's: the median ratio of the new layers'
        counts to the prior's predictions, over the layers that run the kernel path the prior's board
        runs (a fast path's count is no multiple of the reference loop's: 0.13 to 1.2 times it for
        im2col, from the M3 to the M4), over every layer when none does. The median, because a few
        kinds scale apart from the rest (from the M3 to the M7 nearly every kind's count stays
        within 5%, QUANTIZE from float and DEQUANTIZE, soft float on the M3, drop to a tenth), and
        the kinds without new layers that take this factor are more likely the rest."""
        predicted, measured, same_path = [], [], []
        for graph, counts in zip(graphs, layer_counts):
            predicted.append(self.prior.predict_layers(graph))
            measured.append(np.asarray(counts, dtype=np.float64))
            same_path.append([self.prior.op_kind(graph, op) == self.op_kind(graph, op) for op in graph.ops])
        predicted, measured, same_path = map(np.concatenate, (predicted, measured, same_path))
        if not same_path.any():
            same_path[:] = True
        return median_ratio(predicted[same_path], measured[same_path])

    def _float_scale(self, rows: dict) -> float:
        """The factor of float loops (features.py): the median ratio of the new layers' counts to the
        prior's predictions over the layers whose predicted count is mostly float loops (a QUANTIZE
        from float, a DEQUANTIZE, a RESIZE_NEAREST_NEIGHBOR of few channels); the global factor when
        there are none. From the M4 to the M0, whose float arithmetic is library calls, it is about
        10 where the global one is about 1.6."""
        predicted, measured = [], []
        for kind, (X, y, *_) in rows.items():
            prior, floats = self.prior.regressors_.get(kind), KINDS[kind].float_loops
            if prior is None or not floats.any():
                continue
            terms, multiplier = prior.loop_terms(X)
            if terms.shape[1] != len(floats):  # a regressor without loops to tell apart
                continue
            mostly = terms[:, floats].sum(axis=1) > terms.sum(axis=1) / 2
            predicted.append(terms[mostly].sum(axis=1) * multiplier[mostly])
            measured.append(y[mostly])
        predicted = np.concatenate(predicted) if predicted else np.empty(0)
        return median_ratio(predicted, np.concatenate(measured)) if predicted.size else self.scale_

    def _unseen(self, kind: str, prior) -> float | list[float]:
        """The factor of each of the prior regressor's loops that no new layer of `kind` runs: the
        float factor for a float loop, the global one for the others."""
        floats = KINDS[kind].float_loops
        loops = prior.loop_terms(np.zeros((1, prior.n_features_in_)))[0].shape[1]
        if not floats.any() or loops != len(floats):
            return self.scale_
        return np.where(floats, self.float_scale_, self.scale_).tolist()

    def _fit_kind(self, kind: str, rows):
        """(report, regressor) of one kind from its new layers `rows` (None: it has none), or None when
        neither the prior nor the new layers can give it a regressor of its own."""
        prior = self.prior.regressors_.get(kind)
        if rows is None:
            return KindReport(kind, 0, 0, ONE_FACTOR, {}), ScaledRegressor.fixed(prior, self._unseen(kind, prior))
        X, y, groups, model_totals = rows
        one_model = len(np.unique(groups)) < 2  # nothing to cross-validate with
        if prior is None:
            if one_model:  # one model's layers fix no loop costs: the scaled GENERIC fallback
                return None
            candidates = self._loop_costs(kind)
        else:
            unseen = self._unseen(kind, prior)
            candidates = {ONE_FACTOR: partial(ScaledRegressor, prior, unseen=unseen),
                          **{f"{PER_LOOP} (ridge {ridge:g})": partial(ScaledRegressor, prior, ridge, unseen)
                             for ridge in self.ridges}}
            if one_model:
                return KindReport(kind, len(y), 1, ONE_FACTOR, {}), candidates[ONE_FACTOR]().fit(X, y)
        if self._cross_validates(y, groups):
            candidates.update(self._from_scratch(kind))
        return self._choose(kind, X, y, groups, model_totals, candidates)

    def _loop_costs(self, kind: str) -> dict:
        """The candidate of a kind the prior lacks, from the new layers alone, before the from-scratch
        ones (which need the layers and models of a from-scratch fit): the costs of its principal
        loops (features.py), which a few models' layers fix, or of all its loops when it declares
        none. Its minor loops are fitted to the noise of a few layers: im2col's 35 loops, over 13
        layers, mispredicted the held-out ones by 5% of a model; pointwise's 16, over 10 layers in 8
        models, by up to 18% (its principal 8: 4%)."""
        features = KINDS[kind]
        if not features.principal:
            return {CANDIDATES[0]: self._from_scratch(kind)[CANDIDATES[0]]}
        return {PRINCIPAL: partial(LoopCountRegressor, features.n_linear, loops=features.principal_loops)}

    def summary(self) -> dict:
        """What was fitted of the prior: the global and float factors (loops without new layers,
        GENERIC), per kind the factors applied to the prior's regressor (one, or one per loop), the
        kinds refitted from scratch, and whether the overhead was refitted."""
        self._check_fitted()
        scaled = {kind: r.factors_.tolist() for kind, r in self.regressors_.items() if isinstance(r, ScaledRegressor)}
        return {"global_scale": self.scale_, "float_scale": self.float_scale_, "factors": scaled,
                "refitted": sorted(kind for kind in self.regressors_ if kind not in scaled),
                "overhead_refitted": self.overhead_refitted_}

    def _hyperparameters(self) -> dict:
        # The prior lives on in the scaled regressors; a model file names it in its metadata.
        return {name: value for name, value in super()._hyperparameters().items() if name not in ("prior", "ridges")}
