"""Whole models, bit for bit: a population of generated models and the MLPerf Tiny models run
through the host build of the runtime, on the kernels' reference and fast paths, and through TFLite's
reference kernels, every op's output compared."""

from __future__ import annotations

import pytest

from conftest import MLPERF_TINY
from firmware_runner.runtime.verify import verify_model

POPULATION = 300
SAMPLES = 3


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    from hwbench.generate import generate_models

    out = tmp_path_factory.mktemp("population")
    return out, generate_models(POPULATION, seed=404, out_dir=out, jobs=2)


@pytest.mark.parametrize("fast", [False, True], ids=["reference-paths", "fast-paths"])
def test_generated_models_are_bit_exact_on_random_inputs(population, fast):
    folder, entries = population
    results = [verify_model(folder / e["file"], samples=SAMPLES, seed=e["index"], fast=fast) for e in entries]
    failures = [(r.model, r.difference) for r in results if not r.matched]
    assert not failures, f"{len(failures)} of {len(results)} differ, first: {failures[:3]}"
    assert len(results) == POPULATION
    seen = set().union(*(e["op_counts"] for e in entries))
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
            "RESHAPE", "SOFTMAX"} <= seen


@pytest.mark.parametrize("fast", [False, True], ids=["reference-paths", "fast-paths"])
@pytest.mark.parametrize("name", MLPERF_TINY)
def test_mlperf_tiny_models_are_bit_exact(name, mlperf_model, fast):
    result = verify_model(mlperf_model(name), samples=SAMPLES, seed=7, fast=fast)
    assert result.matched, result.difference
    assert result.ops > 0
