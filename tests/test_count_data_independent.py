"""A layer's instruction count on the DSP cores depends on its shapes, never on its values: the latency
models predict counts from loop trip counts and cannot see data. Fused ReLU / ReLU6 clamps and the
requantization are where values could steer a branch (an instruction an IT block skips still counts
under QEMU's -icount, one a branch jumps over does not). One small int8 model with every fast path
(CONV_2D im2col and pointwise, DEPTHWISE_CONV_2D 3x3, FULLY_CONNECTED dot) runs on mps2-an500
(Cortex-M7) for the input seeds that clamp the fewest and the most of each fused layer's outputs (the
first layer clamps all or none of half its channels, so the layers after them see an all-zero input
or not); its per-layer counts must agree and its outputs must equal TFLite's reference bit for bit.
The reference paths are held to the same."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_runner.backends.qemu import QemuBackend
from firmware_runner.collect import run_image
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.firmware.build import build_firmware
from firmware_runner.firmware.protocol import input_values, parse_output
from firmware_runner.runtime.reference import reference_run
from hwbench.boards import get_board
from hwbench.tflite_reader import parse_tflite
from keras_ops import convert, keras_model

FAST_PATHS = {"CONV_2D:im2col", "CONV_2D:pointwise", "DEPTHWISE_CONV_2D:dw_3x3", "FULLY_CONNECTED:dot"}
CANDIDATE_SEEDS = range(1, 41)


def fused_activation_model() -> bytes:
    import keras

    def build(x):
        # The first layer's window covers the whole 8x8 input wherever it sits; four of its channels
        # have positive, smooth weights (set below), so they follow the sign of the input's sum: for
        # some seeds they clamp every output (the layers after them see zeros there), for others none.
        x = keras.layers.Conv2D(8, 15, padding="same", activation="relu", name="global")(x)
        x = keras.layers.Conv2D(16, 1, activation="relu6")(x)
        x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
        return keras.layers.Dense(12, activation="relu")(keras.layers.Flatten()(x))

    shapes = [(8, 8, 2)]
    model = keras_model(build, shapes, seed=3)
    for layer in model.layers:  # small biases: each output's side of the clamp is the data's choice
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, bias * 0.05])
    first = model.get_layer("global")
    kernel, bias = first.get_weights()
    smooth = np.abs(kernel).mean(axis=(0, 1, 2)) * np.linspace(0.5, 1.5, kernel.shape[0])[:, None, None, None]
    kernel[..., :4] = np.broadcast_to(smooth, kernel.shape)[..., :4]  # four channels follow the input's sum
    first.set_weights([kernel, bias])
    return convert(model, shapes, "int8", seed=3)


def clamped_outputs(model: bytes, graph, seed: int) -> list[int]:
    """How many outputs of each fused-activation layer sit at its clamp for this input seed."""
    _, tensors = reference_run(model, graph, input_values(graph, seed), all_tensors=True)
    counts = []
    for op in graph.ops:
        if op.options.get("fused_activation_function", "NONE") == "NONE":
            continue
        out = graph.tensors[op.outputs[0]]
        zero = int(out.quantization.zero_point[0])
        six = zero + round(6 / float(out.quantization.scale[0]))
        values = tensors[op.outputs[0]]
        counts.append(int(np.count_nonzero(values == max(zero, -128)) + np.count_nonzero(values == min(six, 127))))
    return counts


@pytest.fixture(scope="module")
def model() -> bytes:
    return fused_activation_model()


@pytest.fixture(scope="module")
def clamped(model) -> dict[int, list[int]]:
    """Each candidate seed's clamped outputs per fused layer."""
    graph = parse_tflite(model)
    return {seed: clamped_outputs(model, graph, seed) for seed in CANDIDATE_SEEDS}


@pytest.mark.parametrize("board_name, fast", [("mps2-an500", True), ("mps2-an500", False), ("mps2-an385", False)],
                         ids=["M7-fast-paths", "M7-reference-paths", "M3-reference-paths"])
def test_layer_counts_do_not_depend_on_the_input(model, clamped, board_name, fast):
    graph = parse_tflite(model)
    plan = compile_plan(graph, fast=fast)
    paths = {f"{op.type}:{op.path}" for op in plan.ops}
    assert paths >= FAST_PATHS if fast else all(path.endswith(":reference") for path in paths)
    # For each fused layer the seeds that clamp the fewest and the most of its outputs.
    seeds = sorted({pick(clamped, key=lambda seed: clamped[seed][k])
                    for k in range(len(clamped[1])) for pick in (min, max)})
    for k in range(len(clamped[1])):  # the inputs really differ in what every layer clamps
        assert len({clamped[seed][k] for seed in seeds}) > 1, (k, clamped)
    first = [clamped[seed][0] for seed in seeds]  # the channels that follow the sum: all or none
    assert max(first) - min(first) >= graph.tensors[graph.ops[0].outputs[0]].size // 2, first
    board = get_board(board_name)
    firmware, backend = build_firmware(board), QemuBackend(board)
    counts = {}
    for seed in seeds:
        report = parse_output(backend.run(firmware, run_image(plan.blob, seed, 1), timeout=60).output)
        assert report.done, report.last_line
        expected, _ = reference_run(model, graph, input_values(graph, seed))
        assert bytes(report.outputs[0]) == expected[0].tobytes(), f"seed {seed}: output differs from TFLite"
        counts[seed] = [backend.count(report.layers[0][step] - report.calibration_ticks)
                        for step in range(len(plan.ops))]
    layers = [f"{op.type}:{op.path}" for op in plan.ops]
    for seed in seeds[1:]:
        # Counts are exact to within one instruction (the timer ticks 3.2 times per instruction).
        spread = {f"{step} {layer}": b - a
                  for step, (layer, a, b) in enumerate(zip(layers, counts[seeds[0]], counts[seed])) if abs(b - a) > 1}
        assert not spread, (f"seed {seed} (clamped per fused layer {clamped[seed]}) against seed {seeds[0]} "
                            f"({clamped[seeds[0]]}): instructions {spread}")
