"""A search's results: which candidates are feasible, their Pareto front over validation error,
latency, peak memory and flash, and the files written for the user (pareto.csv, pareto.json,
search.png (accuracy against latency), best.tflite, and best.h and best.c: its plan as a C array for
the hwbench runtime — the feasible candidate of highest validation accuracy, with the weights of its
longer retraining when they are as accurate on validation)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from firmware_runner.runtime.export import c_array
from nas.evaluate import Evaluation
from nas.objectives import Bounds, SpecCost
from nas.plot import plot_search
from nas.store import Candidate

FRONT_OBJECTIVES = ("val_error", "latency_ms", "peak_bytes", "flash_bytes")  # all minimised


def violations(candidate: Candidate, bounds: Bounds) -> list[str]:
    """The bounds a trained candidate breaks by its measured numbers (flash now with the plan's exact bytes,
    memory with the decoded op table and the arena)."""
    e = candidate.evaluation
    return bounds.violations(SpecCost(e.macs, e.weight_bytes, e.peak_bytes, e.flash_bytes, e.latency_ms,
                                      e.table_bytes, e.arena_bytes))


def feasible(candidate: Candidate, bounds: Bounds) -> bool:
    """Trained, and within every bound by its measured numbers."""
    return candidate.evaluation.status == "ok" and not violations(candidate, bounds)


def best(candidates: dict[int, Candidate], bounds: Bounds) -> Candidate | None:
    """The feasible candidate of highest validation accuracy (the earliest of equals)."""
    fit = [c for c in candidates.values() if feasible(c, bounds)]
    return max(fit, key=lambda c: (c.evaluation.val_accuracy, -c.round), default=None)


def table(candidates: dict[int, Candidate], bounds: Bounds) -> pd.DataFrame:
    """One row per candidate: round, parent, status, feasible, the bounds it breaks, the metrics and val_error."""
    rows = [{"round": c.round, "parent": c.parent, "feasible": feasible(c, bounds),
             "violations": "; ".join(violations(c, bounds)) if c.evaluation.status == "ok" else None,
             **c.evaluation.metrics()} for c in candidates.values()]
    frame = pd.DataFrame(rows)
    frame["parent"] = frame["parent"].astype("Int64")  # an integer column with gaps (sampled candidates)
    frame["val_error"] = 1 - frame["val_accuracy"]
    return frame


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """The feasible rows no other feasible row dominates (as good in every objective, better in one);
    objectives without values (latency without a latency model) are left out."""
    pool = frame[frame["feasible"]]
    objectives = [o for o in FRONT_OBJECTIVES if pool[o].notna().all()] if len(pool) else []
    values = pool[objectives].to_numpy(float)
    keep = [i for i, v in enumerate(values)
            if not any((w <= v).all() and (w < v).any() for w in values)]
    return pool.iloc[keep].sort_values("val_error")


def write_outputs(out_dir: str | Path, candidates: dict[int, Candidate], bounds: Bounds,
                  retrained: Evaluation | None = None) -> dict:
    """Write the front and the best model; return a JSON-ready summary. `retrained`: the best candidate's
    spec trained anew for longer (Search.retrain): its weights are written when it trained, converted
    and is at least as accurate on validation as the search's (the summary's `retrained`, `used`)."""
    out_dir = Path(out_dir)
    frame = table(candidates, bounds)
    front = pareto_front(frame)
    front.to_csv(out_dir / "pareto.csv", index=False)
    records = json.loads(front.to_json(orient="records"))
    for record in records:
        record["spec"] = candidates[record["round"]].spec
    (out_dir / "pareto.json").write_text(json.dumps(records, indent=1))
    plot_search(frame, front, bounds, out_dir / "search.png")
    summary = {"candidates": len(frame), "feasible": int(frame["feasible"].sum()),
               "failed": int((frame["status"] != "ok").sum()), "pareto_size": len(front), "best": None}
    winner = best(candidates, bounds)  # on the front: nothing feasible is more accurate
    if winner is not None:
        chosen = winner.evaluation
        if retrained is not None:
            used = retrained.status == "ok" and retrained.val_accuracy >= chosen.val_accuracy
            summary["retrained"] = {**retrained.metrics(), "used": used}
            chosen = retrained if used else chosen
        (out_dir / "best.tflite").write_bytes(chosen.tflite)
        header, source = c_array(_plan(chosen.tflite), "best")
        (out_dir / "best.h").write_text(header)
        (out_dir / "best.c").write_text(source)
        summary["best"] = {"round": winner.round, "spec": winner.spec, **winner.evaluation.metrics()}
    return summary


def _plan(data: bytes):
    """The plan the runtime executes: the minimum-peak order, laid out by the arena planner."""
    from firmware_runner.compiler.plan import compile_plan
    from hwbench.tflite_reader import parse_tflite

    return compile_plan(parse_tflite(data, source="best.tflite"))
