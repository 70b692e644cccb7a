"""Latency models transferred between boards, and boards compared, on counts collected from real
QEMU boards: generated models (within the micro:bit's memory) measured on mps2-an386 (Cortex-M4)
and on microbit (Cortex-M0, Thumb-1: a layer's count there is not the M4's), in one results DB."""

from __future__ import annotations

import json
import sqlite3
import zipfile

import numpy as np
import pytest

from hwbench.boards import get_board
from hwbench.errors import HwbenchError
from hwbench.kernel_paths import fast_paths_for
from hwbench.results import ResultsDB
from latency_models.artifact import load_artifact
from latency_models.dataset import load_dataset
from latency_models.features import KINDS, op_kind
from latency_models.metrics import accuracy
from latency_models.model import NEGLIGIBLE_ERROR, LatencyModel
from latency_models.regressors import CANDIDATES, LoopCountRegressor, ScaledRegressor
from latency_models.training import fit_dataset
from latency_models.transfer import ONE_FACTOR, PER_LOOP, PRINCIPAL, RIDGES, TransferredLatencyModel
from test_latency_models import copy_db, one_error_line, run_cli

PRIOR_BOARD, NEW_BOARD = "mps2-an386", "microbit"
N_MODELS = 30  # measured on both boards
N_PRIOR = 80  # more, measured on the prior's board only: the prior learns from these
NEW_MODELS = range(10)  # measured on the new board; the other 20 are held out
SPARE = 10  # generated beyond those, for models whose arena does not fit the micro:bit


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """N_MODELS + N_PRIOR generated models (within the micro:bit's memory) in one results DB: the
    first N_MODELS measured on both boards, the others on the prior's: (DB, model files)."""
    from firmware_runner.collect import collect
    from hwbench.generate import bounds_for, generate_models

    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.firmware.build import build_firmware
    from hwbench.tflite_reader import read_tflite

    folder = tmp_path_factory.mktemp("transfer")
    generate_models(N_MODELS + N_PRIOR + SPARE, seed=71, out_dir=folder / "models", jobs=2,
                    bounds=bounds_for(board=get_board(NEW_BOARD)))
    # The generator bounds the activations' peak; the runtime's decoded op table comes on top of it,
    # so the models measured on both boards are the first whose memory fits beside the micro:bit's
    # firmware, the prior's own the ones named after them (datasets are in file name order).
    new_board = get_board(NEW_BOARD)
    firmware = build_firmware(new_board)
    generated = sorted((folder / "models").glob("*.tflite"))
    both = [f for f in generated if firmware.memory_size(compile_plan(read_tflite(f), fast=fast_paths_for(new_board)).blob)
            <= firmware.arena_capacity][:N_MODELS]
    files = both + [f for f in generated if f.name > both[-1].name][:N_PRIOR]
    assert len(both) == N_MODELS and len(files) == N_MODELS + N_PRIOR
    db = folder / "results.db"
    for board, models in ((PRIOR_BOARD, files), (NEW_BOARD, files[:N_MODELS])):
        measured = collect(get_board(board), models, ResultsDB(db), repeats=1, jobs=2)
        assert all(m.status == "measured" and m.verified for m in measured), \
            [(board, m.model, m.status, m.reason) for m in measured if m.status != "measured"]
    return db, files


@pytest.fixture(scope="module")
def data(collected):
    """Per board, its dataset (in file order: the first N_MODELS are the same models on both)."""
    return {board: load_dataset(collected[0], board) for board in (PRIOR_BOARD, NEW_BOARD)}


@pytest.fixture(scope="module")
def prior(data, tmp_path_factory):
    """The M4's latency model, fitted on the N_PRIOR models the micro:bit did not run, as a file."""
    result = fit_dataset(data[PRIOR_BOARD].subset(range(N_MODELS, N_MODELS + N_PRIOR)),
                         model=LatencyModel(min_layers=5, cv_folds=3))
    path = tmp_path_factory.mktemp("prior") / "an386.latmodel"
    result.save(path)
    return path


@pytest.fixture(scope="module")
def new_data(data):
    """The micro:bit's 10 measured models and its 20 held-out ones."""
    new = data[NEW_BOARD]
    return new.subset(NEW_MODELS), new.subset(range(NEW_MODELS.stop, N_MODELS))


@pytest.fixture(scope="module")
def transferred(prior, new_data):
    train, test = new_data
    return fit_dataset(train, test, prior=load_artifact(prior))


# ------------------------------------------------------------------------------ transfer


def test_the_boards_count_differently(data):
    """What makes the transfer a test: the M0 needs clearly more instructions than the M4, and not
    by one factor (so neither the prior alone nor one global factor would do)."""
    both = data[PRIOR_BOARD].subset(range(N_MODELS))
    assert data[NEW_BOARD].sha256 == both.sha256
    ratios = data[NEW_BOARD].totals / both.totals
    assert ratios.min() > 1.1 and ratios.max() / ratios.min() > 1.1


def test_transfer_with_ten_models_beats_a_fit_from_scratch_on_the_same_ten(prior, new_data, transferred):
    train, test = new_data
    scratch = fit_dataset(train, test)
    learned, from_scratch = transferred.metrics["learned"], scratch.metrics["learned"]
    assert learned["mape"] < from_scratch["mape"] and learned["within_10"] > from_scratch["within_10"]
    # (A held-out model may miss when it has a kind that neither the prior's 80 models nor the 10 new
    # ones had enough of: the GENERIC fallback, scaled, predicts it.)
    assert learned["within_10"] >= 0.9 and learned["mape"] < transferred.metrics["baseline"]["mape"] / 5
    # The factors are what does it: the M4's model alone is far off on the M0.
    unchanged = accuracy(test.totals, load_artifact(prior).model.predict_many(test.graphs))
    assert unchanged["within_10"] < 0.5 and learned["mape"] < unchanged["mape"] / 3


def kinds_in(graph) -> set[str]:
    """The kinds of a micro:bit model's layers (the M0 takes the reference kernel paths)."""
    return {op_kind(graph, op, fast=False) for op in graph.ops}


def test_a_kind_without_new_layers_gets_the_global_factor(prior, new_data):
    train, test = new_data
    prior_model = load_artifact(prior).model
    # The most common kind the prior has a regressor for, left out of the new models.
    counts = {k: sum(k in kinds_in(g) for g in train.graphs) for k in prior_model.regressors_}
    missing = max(sorted(counts), key=lambda k: (0 < counts[k] < len(train), counts[k]))
    without = train.subset([i for i, g in enumerate(train.graphs) if missing not in kinds_in(g)])
    model = TransferredLatencyModel(prior_model, fast_paths=False).fit(without.graphs, without.totals, without.layer_counts)
    assert model.regressors_[missing].factors_.tolist() == [model.scale_] == model.summary()["factors"][missing]
    assert model.kind_reports_[missing].layers == 0
    graph = next(g for g in test.graphs + train.graphs if missing in kinds_in(g))
    rows = [i for i, op in enumerate(graph.ops) if op_kind(graph, op, fast=False) == missing]
    np.testing.assert_allclose(model.predict_layers(graph)[rows], prior_model.predict_layers(graph)[rows] * model.scale_)


def test_float_loops_without_new_layers_take_the_float_factor(prior, new_data, data):
    """The M0 has no FPU: its float arithmetic is library calls, so float loops scale from the M4 far
    apart from the integer ones. A float kind none of the new models holds is predicted with the
    factor of the new layers that are mostly float loops, not the global one."""
    train, _ = new_data
    prior_model = load_artifact(prior).model
    float_kinds = [k for k in prior_model.regressors_ if KINDS[k].float_loops.any()]
    # The float kind in fewest new models is left out; the others give the float factor.
    held = min(float_kinds, key=lambda k: (sum(k in kinds_in(g) for g in train.graphs) == 0,
                                           sum(k in kinds_in(g) for g in train.graphs)))
    without = train.subset([i for i, g in enumerate(train.graphs) if held not in kinds_in(g)])
    model = TransferredLatencyModel(prior_model, fast_paths=False).fit(*columns(without))
    assert model.kind_reports_[held].layers == 0
    assert model.float_scale_ > 3 * model.scale_  # soft float
    factors = model.regressors_[held].factors_
    floats = KINDS[held].float_loops
    assert set(factors[floats]) == {model.float_scale_} and set(factors[~floats]) <= {model.scale_}
    everything = data[NEW_BOARD]
    layers = [(model.predict_layers(g)[i], c[i], prior_model.predict_layers(g)[i] * model.scale_)
              for g, c in zip(everything.graphs, everything.layer_counts)
              for i, op in enumerate(g.ops) if op_kind(g, op, fast=False) == held]
    predicted, measured, global_only = map(np.array, zip(*layers))
    assert np.median(np.abs(predicted / measured - 1)) < np.median(np.abs(global_only / measured - 1)) / 2


def test_kinds_with_new_layers_choose_their_factors_by_cross_validation(prior, new_data):
    """A kind in two new models or more chooses by cross-validation among one factor and factors per
    loop, and the from-scratch candidates too when it has the layers and models a from-scratch fit
    needs; a kind in one new model gets one factor. A kind the prior lacks (the micro:bit's reference
    convolution loops, which the M4 takes only for a few layers) is fitted from scratch, the
    from-scratch candidates joining its loops' costs when it has the layers and models they need."""
    train, _ = new_data
    prior_model = load_artifact(prior).model
    # Ten small models hold few layers of each kind (a convolution's kinds are its kernel paths): a
    # from-scratch fit here needs 6 layers in 5 models.
    model = TransferredLatencyModel(prior_model, min_layers=6, fast_paths=False).fit(train.graphs, train.totals,
                                                                                     train.layer_counts)
    transfer_candidates = [ONE_FACTOR, *(f"{PER_LOOP} (ridge {r:g})" for r in RIDGES)]
    seen = set()
    for kind, report in model.kind_reports_.items():
        scratch = report.layers >= model.min_layers and report.models >= model.cv_folds
        if kind not in prior_model.regressors_:
            # (The reference loops have no principal loops of their own: all their loops are principal.)
            assert list(report.cv_error) == list(CANDIDATES if scratch else CANDIDATES[:1])
            seen.add("not in the prior")
        elif report.models >= 2:
            assert list(report.cv_error) == transfer_candidates + (list(CANDIDATES) if scratch else [])
            best = min(report.cv_error.values())
            assert report.chosen == next(c for c in report.cv_error if report.cv_error[c] <= best * 1.05 + NEGLIGIBLE_ERROR)
            seen.add("from scratch too" if scratch else "transfer only")
        elif report.models == 1:
            assert report.chosen == ONE_FACTOR and not report.cv_error
            seen.add("one model")
    assert seen == {"from scratch too", "transfer only", "one model", "not in the prior"}
    assert model.summary()["refitted"] == sorted(k for k, r in model.regressors_.items()
                                                 if not isinstance(r, ScaledRegressor))


def test_a_reference_path_prior_transfers_to_a_board_on_the_fast_paths(data):
    """From the micro:bit (reference loops only) to the M4: the fast paths' kinds, which the prior
    lacks, cost their principal loops alone (minor loops stay at 0), the from-scratch candidates
    (all their loops among them) joining only when a kind has the layers and models a from-scratch
    fit needs; the global factor is the median ratio over the layers both boards run on the same path (a
    fast path's count is no multiple of the reference loop's); and ten models beat a fit from scratch
    on them."""
    prior_model = LatencyModel(min_layers=5, cv_folds=3, fast_paths=False).fit(*columns(data[NEW_BOARD]))
    fast = data[PRIOR_BOARD].subset(range(N_MODELS, N_MODELS + N_PRIOR))
    train, test = fast.subset(range(10)), fast.subset(range(10, N_PRIOR))
    model = TransferredLatencyModel(prior_model, fast_paths=True).fit(*columns(train))
    fast_kinds = {kind for kind in model.kind_reports_ if KINDS[kind].principal}
    assert fast_kinds and not fast_kinds & set(prior_model.regressors_)
    for kind in fast_kinds:
        report = model.kind_reports_[kind]
        scratch = report.layers >= model.min_layers and report.models >= model.cv_folds
        assert list(report.cv_error) == [PRINCIPAL, *(CANDIDATES if scratch else [])]
        if report.chosen == PRINCIPAL:
            minor = [i for i in range(KINDS[kind].n_linear) if i not in KINDS[kind].principal_loops]
            assert not model.regressors_[kind].coef_[minor].any()
    same_path = [max(c[i], 1) / max(prior_model.predict_layers(g)[i], 1)
                 for g, c in zip(train.graphs, train.layer_counts)
                 for i, op in enumerate(g.ops) if op_kind(g, op, fast=False) == op_kind(g, op, fast=True)]
    assert model.scale_ == pytest.approx(np.median(same_path))
    learned = accuracy(test.totals, model.predict_many(test.graphs))
    scratch = accuracy(test.totals, LatencyModel().fit(*columns(train)).predict_many(test.graphs))
    assert learned["mape"] < scratch["mape"] and learned["within_10"] > scratch["within_10"]


def columns(dataset):
    return dataset.graphs, dataset.totals, dataset.layer_counts


def test_factors_per_loop_recover_how_each_loops_cost_changed():
    """A prior whose loop costs are known; a new board on which each loop costs its own factor more:
    the per-loop fit finds those factors, one factor cannot; a loop the new layers never run takes
    the factor given for unseen loops."""
    rng = np.random.default_rng(3)
    X = rng.integers(1, 1000, size=(12, 5)).astype(np.float64)
    costs, change = np.array([5.0, 2.0, 0.5, 7.0]), np.array([1.5, 0.8, 3.0, 9.0])
    prior = LoopCountRegressor(n_linear=4).fit(X, X[:, :4] @ costs)
    X[:, 3] = 0  # the new layers never run the fourth loop
    y = X[:, :4] @ (costs * change)
    per_loop = ScaledRegressor(prior, ridge=0.0, unseen=1.7).fit(X, y)
    np.testing.assert_allclose(per_loop.factors_, [1.5, 0.8, 3.0, 1.7], rtol=1e-6)
    np.testing.assert_allclose(per_loop.predict(X), y, rtol=1e-6)
    one = ScaledRegressor(prior, unseen=1.7).fit(X, y)
    assert one.factors_[3] == 1.7 and len(set(one.factors_[:3])) == 1
    assert np.abs(one.predict(X) / y - 1).max() > 0.05
    pulled = ScaledRegressor(prior, ridge=10.0).fit(X, y)  # a strong pull toward the one factor
    assert np.ptp(pulled.factors_[:3]) < np.ptp(per_loop.factors_[:3]) and pulled.factors_[3] == one.factors_[0]


def test_one_model_is_enough_and_its_overhead_is_the_priors_scaled(prior, new_data):
    train, test = new_data
    prior_model = load_artifact(prior).model
    model = TransferredLatencyModel(prior_model, fast_paths=False).fit(train.graphs[:1], train.totals[:1], train.layer_counts[:1])
    np.testing.assert_allclose(model.overhead_, prior_model.overhead_ * model.scale_)
    assert not model.summary()["overhead_refitted"]
    assert np.isfinite(model.predict_many(test.graphs)).all()
    # (Whether one model already beats the prior depends on the pair: from the M4 to the M0 it does
    # not, as the M0's reference convolution loops are a kind the M4 runs for a few odd layers only;
    # ten models do, see above.)
    with pytest.raises(HwbenchError, match="needs a fitted prior"):
        TransferredLatencyModel().fit(train.graphs, train.totals, train.layer_counts)


def test_a_transferred_model_saves_loads_and_names_its_prior(prior, transferred, new_data, tmp_path):
    path = tmp_path / "microbit.latmodel"
    transferred.save(path)
    artifact = load_artifact(path, board=NEW_BOARD)
    meta = artifact.metadata["transfer"]
    prior_file = load_artifact(prior)
    assert meta["prior"]["board"] == PRIOR_BOARD and meta["prior"]["sha256"] == prior_file.sha256
    assert meta["prior"]["runtime_hash"] == prior_file.runtime_hash and meta["prior"]["n_models"] == N_PRIOR
    assert meta["factors"] == {k: r.factors_.tolist() for k, r in transferred.model.regressors_.items()
                               if isinstance(r, ScaledRegressor)}
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    for kind, regressor in transferred.model.regressors_.items():
        if isinstance(regressor, ScaledRegressor) and isinstance(regressor.prior, LoopCountRegressor):
            assert {f"regressors/{kind}/factors.npy", f"regressors/{kind}/prior/coef.npy"} <= names
    train, test = new_data
    for graph in train.graphs + test.graphs:
        assert np.array_equal(artifact.model.predict_layers(graph), transferred.model.predict_layers(graph))
        assert artifact.model.predict(graph) == transferred.model.predict(graph)


# ------------------------------------------------------------------------------ hwbench fit --prior


def test_cli_fit_with_a_prior_reports_the_held_out_metrics_and_the_factors(collected, prior, tmp_path, capsys):
    db, _ = collected
    out_file = tmp_path / "t.latmodel"
    code, out, err = run_cli(capsys, "fit", "--db", db, "--board", NEW_BOARD, "--prior", prior, "--out", out_file)
    assert code == 0, err
    for text in ("within ±10%", "MACs baseline", "scaled-prior", f"transferred from {prior} ({PRIOR_BOARD}",
                 "per-inference overhead"):
        assert text in out, text
    assert "CONV_2D ×" in out or "refitted from scratch: CONV_2D" in out  # what became of the main kind is said
    code, out, err = run_cli(capsys, "fit", "--db", db, "--board", NEW_BOARD, "--prior", prior, "--out", out_file,
                             "--json")
    report = json.loads(out)
    assert code == 0, err
    assert report["transfer"]["prior"]["board"] == PRIOR_BOARD and report["held_out"]["learned"]["n"] == round(0.2 * N_MODELS)
    meta = load_artifact(out_file).metadata
    for key in ("board", "transfer", "held_out", "regressors", "overhead"):
        assert report[key] == meta[key], key


def test_cli_fit_refuses_a_prior_of_another_unit_or_feature_schema(collected, prior, tmp_path, capsys):
    db, _ = collected
    cycles = copy_db(db, tmp_path / "cycles.db")
    with sqlite3.connect(cycles) as c:
        c.execute("UPDATE measurements SET unit = 'cycles' WHERE board = ?", (NEW_BOARD,))
    code, _, err = run_cli(capsys, "fit", "--db", cycles, "--board", NEW_BOARD, "--prior", prior, "--out",
                           tmp_path / "x.latmodel")
    assert "counts instructions" in one_error_line(code, err) and "measured in cycles" in err
    with zipfile.ZipFile(prior) as source, zipfile.ZipFile(tmp_path / "old.latmodel", "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "header.json":
                header = json.loads(data)
                header["metadata"]["feature_schema"] = 1
                data = json.dumps(header).encode()
            target.writestr(name, data)
    code, _, err = run_cli(capsys, "fit", "--db", db, "--board", NEW_BOARD, "--prior", tmp_path / "old.latmodel",
                           "--out", tmp_path / "x.latmodel")
    assert "feature schema 1" in one_error_line(code, err)
    code, _, err = run_cli(capsys, "fit", "--db", db, "--board", NEW_BOARD, "--prior", tmp_path / "none.latmodel",
                           "--out", tmp_path / "x.latmodel")
    assert "no such latency-model file" in one_error_line(code, err)
    assert not (tmp_path / "x.latmodel").exists()


# ------------------------------------------------------------------------------ hwbench results --compare


def test_compare_gives_each_models_and_operators_ratio_of_counts(collected, capsys):
    db, _ = collected
    code, out, err = run_cli(capsys, "results", "--db", db, "--compare", NEW_BOARD, PRIOR_BOARD, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["boards"] == [NEW_BOARD, PRIOR_BOARD] and result["unit"] == "instructions"
    # Recomputed from what `hwbench results` exports: the models on both boards are the first N_MODELS.
    frame = ResultsDB(db).measurements()
    counts = {(r.board, r.sha256): r.count for r in frame.itertuples()}
    shared = set(frame[frame.board == NEW_BOARD].sha256)
    assert result["models"] == len(shared) == N_MODELS == len({m["sha256"] for m in result["per_model"]})
    for m in result["per_model"]:
        assert m["ratio"] == pytest.approx(counts[NEW_BOARD, m["sha256"]] / counts[PRIOR_BOARD, m["sha256"]])
    layers = ResultsDB(db).layers()
    layers = layers[layers.sha256.isin(shared)]
    by_op = layers.groupby(["board", "op_type"])["count"].sum()
    operators = {r["op"]: r for r in result["per_operator"]}
    assert set(operators) == set(layers["op_type"])
    for op, row in operators.items():
        assert row["ratio"] == pytest.approx(by_op[NEW_BOARD, op] / by_op[PRIOR_BOARD, op])
        assert row["min_layer_ratio"] <= row["median_layer_ratio"] <= row["max_layer_ratio"]
        assert row["layers"] == len(layers[(layers.board == PRIOR_BOARD) & (layers.op_type == op)])
    assert result["summary"]["min_ratio"] > 1  # the M0 needs more instructions than the M4 on every model
    code, out, err = run_cli(capsys, "results", "--db", db, "--compare", NEW_BOARD, PRIOR_BOARD)
    assert code == 0, err
    assert "CONV_2D" in out and f"{NEW_BOARD} / {PRIOR_BOARD}" in out and f"over all {N_MODELS} models" in out


def test_compare_refuses_boards_counted_in_different_units_saying_so(collected, tmp_path, capsys):
    db = copy_db(collected[0], tmp_path / "cycles.db")
    with sqlite3.connect(db) as c:
        c.execute("UPDATE measurements SET unit = 'cycles' WHERE board = ?", (PRIOR_BOARD,))
    code, _, err = run_cli(capsys, "results", "--db", db, "--compare", NEW_BOARD, PRIOR_BOARD)
    assert "in instructions and" in one_error_line(code, err) and "cycles" in err and "different units" in err
    for args, expected in (((NEW_BOARD, "nucleo-f746zg"), "no verified measurements of board nucleo-f746zg"),
                           ((NEW_BOARD, NEW_BOARD), "two different boards")):
        code, _, err = run_cli(capsys, "results", "--db", collected[0], "--compare", *args)
        assert expected in one_error_line(code, err)
    code, _, err = run_cli(capsys, "results", "--db", collected[0], "--compare", NEW_BOARD, PRIOR_BOARD, "--layers")
    assert "--compare" in one_error_line(code, err)
