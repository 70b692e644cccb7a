"""The search spaces: μNAS's CNN space, MCUNet's MBConv space with TinyNAS's search-space optimisation,
and a DS-CNN space — their specs against the converted models, their morphisms, resizing the images to
a space's resolution, and a short search in each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import spec_cost as generator_spec_cost
from hwbench.generate.spec_graph import spec_graph
from nas.objectives import Bounds
from nas.spaces import CnnSpace, DscnnSpace, MbconvSpace
from nas.spaces import dscnn, mbconv
from nas.spaces.tinynas import optimise_space, pair_rng

SPACES = {"unas": lambda: CnnSpace((8, 8, 1), 10), "mbconv": lambda: MbconvSpace((12, 12, 1), 10, width=0.5),
          "dscnn": lambda: DscnnSpace((8, 8, 1), 10)}
CHAIN = 24  # mutations in a row


def _chain(space, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    specs = [space.sample(rng)]
    for _ in range(CHAIN):
        specs.append(space.mutate(specs[-1], rng))
    return specs


@pytest.mark.parametrize("name", SPACES)
def test_samples_and_mutations_have_the_costs_of_their_converted_models(name):
    """Spec → graph IR gives the ops, shapes, MACs, weights and exact peak of the Keras model the spec
    builds, converted to int8 TFLite (batch normalisation folded, ReLU6 fused)."""
    from hwbench.costs import graph_cost
    from hwbench.generate.build import build_tflite
    from hwbench.memory import schedule
    from hwbench.tflite_reader import parse_tflite

    space = SPACES[name]()
    specs = _chain(space, seed=1)
    ops = set()
    for spec in specs[::CHAIN // 2]:  # a sample and two descendants: TensorFlow is slow
        built, expected = parse_tflite(build_tflite(spec, np.random.default_rng(0))), spec_graph(spec)
        assert [(op.type, [built.tensors[i].shape for i in op.outputs]) for op in built.ops] == \
            [(op.type, [expected.tensors[i].shape for i in op.outputs]) for op in expected.ops]
        figures, expected_figures = graph_cost(built), graph_cost(expected)
        assert (figures.macs, figures.weight_bytes, figures.activation_bytes) == \
            (expected_figures.macs, expected_figures.weight_bytes, expected_figures.activation_bytes)
        assert schedule(built).peak_bytes == generator_spec_cost(spec).peak_bytes
        ops |= set(built.op_counts())
    if name == "mbconv":
        assert "ADD" in ops  # a block that keeps its shape adds its input
    if name != "unas":
        assert {"DEPTHWISE_CONV_2D", "CONV_2D", "MEAN"} <= ops


def test_mbconv_morphisms_change_one_choice_of_one_block_or_one_stage_depth():
    space = SPACES["mbconv"]()
    specs = _chain(space, seed=2)
    kinds = set()
    for parent, child in zip(specs, specs[1:]):
        before, after = space.stages(parent), space.stages(child)
        assert child["input"] == [12, 12, 1] and child["layers"][:2] == parent["layers"][:2]  # the stem and first block
        assert all(len(stage) in mbconv.DEPTHS for stage in after)
        assert all(k in mbconv.KERNELS and e in mbconv.EXPANSIONS for stage in after for k, e in stage)
        changed = [s for s in range(len(before)) if before[s] != after[s]]
        assert len(changed) == 1
        old, new = before[changed[0]], after[changed[0]]
        if len(old) == len(new):
            (j,) = [j for j in range(len(old)) if old[j] != new[j]]
            assert (old[j][0] == new[j][0]) != (old[j][1] == new[j][1])  # the kernel or the expansion
            kinds.add("kernel" if old[j][0] != new[j][0] else "expansion")
        else:
            assert abs(len(old) - len(new)) == 1
            kinds.add("depth")
        # each stage's first block strides (the space's stride plan), the others keep the shape and add
        blocks = [layer for layer in child["layers"][2:] if layer["op"] == "mbconv"]
        assert [b["stride"] for b in blocks] == [stride if j == 0 else 1 for (_, stride), stage in
                                                 zip(mbconv.STAGES, after) for j in range(len(stage))]
    assert kinds == {"kernel", "expansion", "depth"}


def test_the_width_multiplier_scales_every_channel_count_to_the_channel_group():
    for width in (0.25, 0.5, 0.75, 1.0):
        spec = MbconvSpace((8, 8, 1), 10, width).sample(np.random.default_rng(0))
        widths = [layer["filters"] for layer in spec["layers"] if "filters" in layer]
        assert all(w % mbconv.CHANNEL_GROUP == 0 for w in widths)
        assert widths[0] == max(4, round(16 * width / 4) * 4)


def test_dscnn_morphisms_move_one_setting_of_one_convolution_or_one_block():
    space = SPACES["dscnn"]()
    specs = _chain(space, seed=3)
    kinds = set()
    for parent, child in zip(specs, specs[1:]):
        (first, blocks), (new_first, new_blocks) = space.parts(parent), space.parts(child)
        layers = child["layers"]
        assert [layer["op"] for layer in layers] == ["conv"] + ["dwconv", "conv"] * len(new_blocks) + \
            ["global_avg", "dense"]
        assert all(layer["activation"] == "relu6" and layer["batchnorm"] for layer in layers[:-2])
        assert all(layer["kernel"] == 3 for layer in layers[1:-2:2]) and 1 <= len(new_blocks) <= dscnn.MAX_BLOCKS
        if len(blocks) != len(new_blocks):
            assert abs(len(blocks) - len(new_blocks)) == 1 and first == new_first
            kinds.add("add" if len(new_blocks) > len(blocks) else "remove")
            continue
        moved = [(a, b) for a, b in zip([first] + blocks, [new_first] + new_blocks) if a != b]
        assert len(moved) == 1
        (a, b), = moved
        settings = [i for i in range(len(a)) if a[i] != b[i]]
        assert len(settings) == 1
        if settings == [0]:
            assert abs(dscnn.CHANNELS.index(a[0]) - dscnn.CHANNELS.index(b[0])) == 1
        kinds.add(("channels", "stride", "kernel")[settings[0]])
    assert kinds == {"channels", "stride", "kernel", "add", "remove"}


# ------------------------------------------------------------------------------ TinyNAS's choice


GRID = dict(widths=(0.25, 0.5), resolutions=[(6, 6), (8, 8), (12, 12)], samples=20, seed=5)
TIGHT = Bounds(max_peak_bytes=1024, max_flash_bytes=6000)


def test_the_optimisation_picks_the_pair_whose_feasible_samples_have_the_most_macs():
    """Recomputed here from the pairs' own samples, costed by the generator and checked by hand."""
    space = optimise_space((8, 8, 1), 10, TIGHT, **GRID)
    means, table = {}, {(p["width"], tuple(p["resolution"])): p for p in space.summary()["pairs"]}
    for width in GRID["widths"]:
        for resolution in GRID["resolutions"]:
            rng, pair_space = pair_rng(GRID["seed"], width, resolution), MbconvSpace((*resolution, 1), 10, width)
            costs = [generator_spec_cost(pair_space.sample(rng)) for _ in range(GRID["samples"])]
            macs = [c.macs for c in costs if c.peak_bytes <= 1024 and c.weight_bytes <= 6000]
            row = table[(width, resolution)]
            assert row["feasible"] == len(macs) and row["feasible_share"] == len(macs) / GRID["samples"]
            if macs:
                means[(width, resolution)] = sum(macs) / len(macs)
                assert (row["macs_min"], row["macs_median"], row["macs_max"]) == \
                    (min(macs), float(np.median(macs)), max(macs))
                assert row["macs_mean"] == pytest.approx(means[(width, resolution)])
            else:
                assert row["macs_mean"] is None
    assert 1 < len(means) < 6  # the bounds matter: some pairs have no feasible sample, several have some
    chosen = max(means, key=means.get)
    assert (space.width, tuple(space.input_shape[:2])) == chosen and space.input_shape[2] == 1
    # not merely the largest pair: the bounds decide
    assert chosen != (0.5, (12, 12))


def test_bounds_no_pair_meets_say_so_with_the_smallest_seen():
    with pytest.raises(HwbenchError, match=r"no MBConv architecture met the bounds .* \(6 pairs, 20 samples each\); "
                                           r"the smallest peak seen was [\d,]+ B"):
        optimise_space((8, 8, 1), 10, Bounds(max_peak_bytes=40), **GRID)


def test_images_are_resized_to_the_spaces_resolution_as_pil_does():
    from PIL import Image

    from nas.datasets import load_dataset, resized

    digits = load_dataset("digits")
    assert resized(digits, (8, 8)) is digits
    for size in [(6, 6), (12, 12), (5, 11)]:
        smaller = resized(digits, size)
        assert smaller.x_train.shape[1:] == (*size, 1) and len(smaller.x_test) == len(digits.x_test)
        assert np.array_equal(smaller.y_val, digits.y_val)
        expected = [np.asarray(Image.fromarray(x[..., 0]).resize(size[::-1], Image.BILINEAR))
                    for x in digits.x_val[:40]]
        assert np.allclose(smaller.x_val[:40, ..., 0], expected, atol=1e-6)


# ------------------------------------------------------------------------------ a short search in each


SEARCH = dict(board="mps2-an386", dataset="digits", bounds=Bounds(max_peak_bytes=1024), rounds=2, epochs=1,
              population=1, sample=1, in_flight=1, seed=1, space_samples=10)


@pytest.mark.parametrize("name", SPACES)
def test_aging_evolution_searches_each_space_on_digits(name, tmp_path):
    from hwbench.tflite_reader import parse_tflite
    from nas.search import SearchSettings, run_search, search_context

    settings = SearchSettings(**SEARCH, space=name)
    done = run_search(settings, tmp_path)
    space = search_context(settings)[1]
    assert space.name == name and done[0].parent is None and done[1].parent == 0  # round 1 mutates round 0
    assert done[1].spec != done[0].spec
    for candidate in done.values():
        e = candidate.evaluation
        assert e.status == "ok", e.reason
        assert e.peak_bytes <= 1024 and e.val_accuracy > 0.1  # better than chance after one epoch
        graph = parse_tflite(e.tflite)
        assert list(graph.tensors[graph.inputs[0]].shape[1:]) == candidate.spec["input"] == space.input_shape


def test_the_command_reports_the_chosen_pair_and_every_pairs_macs(tmp_path, capsys):
    from conftest import run_cli

    code, stdout, stderr = run_cli(capsys, "search", "--board", "mps2-an386", "--dataset", "digits", "--out",
                                   str(tmp_path / "s"), "--max-peak", "1024", "--space", "mbconv",
                                   "--space-samples", "10", "--algorithm", "random", "--rounds", "1", "--epochs", "1",
                                   "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    space = summary["space"]
    assert summary["settings"]["space"] == "mbconv" and space["name"] == "mbconv"
    assert len(space["pairs"]) == 20 and all(p["samples"] == 10 for p in space["pairs"])
    feasible = [p for p in space["pairs"] if p["feasible"]]
    assert max(feasible, key=lambda p: p["macs_mean"]) == next(
        p for p in space["pairs"] if (p["width"], p["resolution"]) == (space["width"], space["resolution"]))
    assert summary["best"]["spec"]["input"] == [*space["resolution"], 1]


def test_an_unknown_space_is_one_line(tmp_path, capsys):
    from conftest import run_cli

    code, _, stderr = run_cli(capsys, "search", "--board", "mps2-an386", "--dataset", "digits", "--out",
                              str(tmp_path / "s"), "--space", "resnet")
    assert code == 1 and "unknown search space 'resnet': use unas, mbconv, dscnn" in stderr
    assert len(stderr.strip().splitlines()) == 1
