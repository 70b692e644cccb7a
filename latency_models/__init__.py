"""Per-layer latency features and per-board scikit-learn latency models.

    from latency_models import LatencyModel
    model = LatencyModel.load("an386.latmodel")
    model.predict(graph)  # count per inference, in the board's unit

- `features`: loop trip counts and parameters per operator kind, from the graph IR only
- `regressors`: the candidate per-layer regressors (and their fast tree walk)
- `model`: `LatencyModel` — per-kind regressors chosen by grouped cross-validation + overhead
- `baseline`: `MacsBaseline`, the MACs-proportional proxy always reported beside it
- `dataset`: training data from a results DB (one board, one runtime build)
- `metrics`: model-level accuracy and the per-operator error table
- `training`: what `hwbench fit` does; `prediction`: what `hwbench predict` reports
- `artifact`: the model file (a zip of JSON metadata and `.npy` arrays: no pickle); `state`: fitted
  objects as those JSON params and arrays
- `plot`: predicted vs measured
"""


def __getattr__(name: str):
    # Lazy, so importing the package (or only its features) does not load scikit-learn.
    if name == "LatencyModel":
        from latency_models.model import LatencyModel

        return LatencyModel
    if name == "MacsBaseline":
        from latency_models.baseline import MacsBaseline

        return MacsBaseline
    raise AttributeError(f"module 'latency_models' has no attribute {name!r}")
