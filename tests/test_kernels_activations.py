"""RELU, RELU6, LEAKY_RELU and HARD_SWISH (int8) against TFLite's reference kernels, bit for bit:
Keras models calibrated to ordinary, lopsided, huge and tiny ranges (the tiny ones drive
HardSwish's int16 rounding shift past 16 bits), the same ops after a CONCATENATION (in place) and
inside float I/O models, rewritten scales no converter would choose, and what hwbench refuses and why.

The converter fuses an activation into a preceding CONV/DENSE (and RELU/RELU6 into an ADD), so
each one here follows the input or a CONCATENATION, and op_types checks it stayed an operator of
its own. Inputs of 1,024 int8 values
cover every input byte on every sample.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_ops import assert_bit_exact, int8_model, op_types, with_params
from test_kernels_quantize import io_tensors, run_plan, with_quantization

SHAPE = (16, 16, 4)
CALIBRATIONS = [(-1.0, 1.0), (0.0, 100.0), (-0.001, 0.001), (-50.0, 50.0), (-1e-6, 1e-6), (2.0, 3.0)]


def _activation(name: str):
    import keras

    layers = keras.layers
    return {
        "ReLU": ("RELU", lambda x: layers.ReLU()(x)),
        "Activation(relu)": ("RELU", lambda x: layers.Activation("relu")(x)),
        "ReLU(max_value=6)": ("RELU6", lambda x: layers.ReLU(max_value=6)(x)),
        "LeakyReLU(0.1)": ("LEAKY_RELU", lambda x: layers.LeakyReLU(negative_slope=0.1)(x)),
        "LeakyReLU(0.3)": ("LEAKY_RELU", lambda x: layers.LeakyReLU(negative_slope=0.3)(x)),
        "LeakyReLU(2.5)": ("LEAKY_RELU", lambda x: layers.LeakyReLU(negative_slope=2.5)(x)),
        "Activation(hard_swish)": ("HARD_SWISH", lambda x: layers.Activation("hard_swish")(x)),
    }[name]


ACTIVATIONS = ["ReLU", "Activation(relu)", "ReLU(max_value=6)", "LeakyReLU(0.1)", "LeakyReLU(0.3)", "LeakyReLU(2.5)",
               "Activation(hard_swish)"]
ONE_EACH = ["ReLU", "ReLU(max_value=6)", "LeakyReLU(0.3)", "Activation(hard_swish)"]


@pytest.mark.parametrize("calibration", CALIBRATIONS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_after_the_input_is_bit_exact(activation, calibration):
    op_type, build = _activation(activation)
    model = int8_model(build, [SHAPE], calibration=calibration)
    assert op_types(model) == {op_type}
    assert_bit_exact(model)


@pytest.mark.parametrize("activation", ONE_EACH)
def test_activation_after_a_concatenation_runs_in_place_bit_exact(activation):
    """After a CONCATENATION (an ADD would take RELU and RELU6 in as its fused activation) the arena
    planner puts the activation's output on its input (hwbench.memory's reuse rule), so the kernel
    reads each element before overwriting it."""
    import keras
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.verify import verify_model

    op_type, build = _activation(activation)
    model = int8_model(lambda x: build(keras.layers.Concatenate()([x, x])), [SHAPE], calibration=(-3.0, 3.0))
    assert op_types(model) == {"CONCATENATION", op_type}
    graph = parse_tflite(model)
    plan = compile_plan(graph)
    op = next(op for op in graph.ops if op.type == op_type)
    assert plan.places[op.outputs[0]].offset == plan.places[op.inputs[0]].offset
    result = verify_model(model, plan=plan)
    assert result.matched, result.difference


@pytest.mark.parametrize("activation", ONE_EACH)
def test_activation_in_a_float_io_model_is_bit_exact(activation):
    op_type, build = _activation(activation)
    model = int8_model(build, [SHAPE], calibration=(-4.0, 4.0), float_io=True)
    assert op_types(model) == {"QUANTIZE", op_type, "DEQUANTIZE"}
    assert_bit_exact(model)


def _rewritten_scales(op_type: str, rng: np.random.Generator) -> tuple[float, float]:
    """Input and output scales from 1e-9 to 1e3, their ratio within what hwbench supports: below
    2^28 (shift 30 at most, times an alpha up to 4), and for HARD_SWISH an output scale above input scale / 64
    (TFLite refuses <= input / 128)."""
    s_in = 10 ** rng.uniform(-9, 3)
    if op_type == "HARD_SWISH":
        return s_in, s_in * 2 ** rng.uniform(-6, 20)
    return s_in, s_in / 2 ** rng.uniform(-20, 28)


@pytest.mark.parametrize("activation", ["ReLU", "ReLU(max_value=6)", "LeakyReLU(0.1)", "LeakyReLU(2.5)",
                                        "Activation(hard_swish)"])
def test_activation_with_rewritten_scales_is_bit_exact(activation):
    op_type, build = _activation(activation)
    model = int8_model(build, [SHAPE])
    x, y = io_tensors(model)
    rng = np.random.default_rng(11)
    for _ in range(30):
        s_in, s_out = _rewritten_scales(op_type, rng)
        if op_type == "RELU6":
            s_out = max(s_out, 3e-9)  # below 6 / 2^31, TFLite's clamp overflows int32 (refused)
        assert_bit_exact(with_quantization(model, {x: (s_in, int(rng.integers(-128, 128))),
                                                   y: (s_out, int(rng.integers(-128, 128)))}), samples=2)


@pytest.mark.parametrize("activation", ["ReLU", "ReLU(max_value=6)"])
def test_dead_relu_with_a_huge_multiplier_is_refused(activation):
    """All-negative calibration over a wide range: the output scale is the converter's minimum and
    input/output is 2^33.8. TFLite's interpreter then shifts by 34 bits (undefined in C++)."""
    from hwbench.errors import PlanError
    from firmware_runner.runtime.verify import verify_model

    op_type, build = _activation(activation)
    model = int8_model(build, [SHAPE], calibration=(-3e4, -2e4))
    with pytest.raises(PlanError, match=rf"operator 0 \({op_type}\): input/output scale ratio .*2\^33\.8"):
        verify_model(model)


def test_hard_swish_refused_where_tflite_refuses_it():
    """An output scale at or below input scale / 128 fails HardSwishPrepare; hwbench says so too."""
    from hwbench.errors import ModelError, PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.reference import reference_run

    _, build = _activation("Activation(hard_swish)")
    model = int8_model(build, [SHAPE], calibration=(-5.0, -4.0))  # hard_swish(x) = 0 there: a tiny output scale
    graph = parse_tflite(model)
    with pytest.raises(PlanError, match=r"operator 0 \(HARD_SWISH\): output scale .* at or below input scale"):
        compile_plan(graph)
    with pytest.raises(ModelError, match="refused"):
        reference_run(model, graph, [np.zeros((1, *SHAPE), np.int8)])


@pytest.mark.parametrize("activation,fields", [
    ("ReLU", {1: 31}),                     # relu_params.shift
    ("ReLU", {2: 50, 3: 10}),              # act_min > act_max
    ("ReLU", {3: 128}), ("ReLU(max_value=6)", {2: -129}),  # clamp past int8
    ("LeakyReLU(0.1)", {1: -32}), ("LeakyReLU(0.1)", {3: 31}),  # the two shifts
    ("Activation(hard_swish)", {0: 40000}), ("Activation(hard_swish)", {1: 31}),  # int16 multiplier, exponents
    ("Activation(hard_swish)", {3: 1}),
])
def test_kernel_refuses_bad_parameters(activation, fields):
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan

    _, build = _activation(activation)
    model = int8_model(build, [(4, 4)])
    blob = compile_plan(parse_tflite(model)).blob
    run_plan(blob, model)
    for field, value in fields.items():
        blob = with_params(blob, 0, field, value)
    with pytest.raises(PlanError, match="bad parameters"):
        run_plan(blob, model)
