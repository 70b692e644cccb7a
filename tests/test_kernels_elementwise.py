"""ADD, SUB and MUL: the runtime's int8 kernels against TFLite's reference kernels, bit for bit, on
Keras models: same shapes, broadcasting (one side, both sides, across ranks, a constant operand,
a scalar constant), fused activations, extreme scales and zero points, and in place."""

from __future__ import annotations

import pytest

from keras_ops import assert_bit_exact, int8_model, op_types

LAYERS = {"ADD": "Add", "SUB": "Subtract", "MUL": "Multiply"}


def binary(op: str, activation: str | None = None):
    def build(x, y):
        import keras

        out = getattr(keras.layers, LAYERS[op])()([x, y])
        return keras.layers.ReLU(6.0 if activation == "RELU6" else None)(out) if activation else out
    return build


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("shapes, calibration", [
    ([(4, 4, 3), (4, 4, 3)], (-1.0, 1.0)),
    ([(4, 4, 3), (1, 1, 3)], (0.0, 100.0)),  # zero points -128; (1, 1, 3) arrives reshaped to (3,)
    ([(4, 1, 5), (1, 3, 5)], (-0.001, 0.001)),  # both sides broadcast; tiny scales
    ([(2, 3, 7), (2, 1, 1)], (-3.0, 0.1)),  # lopsided range, odd channels
], ids=["same", "channel-vector", "both-sides", "lopsided"])
def test_binary_op_is_bit_exact(op, shapes, calibration):
    model = int8_model(binary(op), shapes, calibration=calibration)
    assert op in op_types(model)
    assert_bit_exact(model)


@pytest.mark.parametrize("op, activation", [("ADD", "RELU"), ("SUB", "RELU"), ("ADD", "RELU6"), ("MUL", "RELU")])
def test_fused_activation_is_bit_exact(op, activation):
    from hwbench.tflite_reader import parse_tflite

    model = int8_model(binary(op, activation), [(4, 4, 3), (4, 4, 3)], calibration=(-10.0, 10.0))
    ops = parse_tflite(model).ops
    assert [(o.type, o.options["fused_activation_function"]) for o in ops] == [(op, activation)]
    assert_bit_exact(model)


def mul_scalar(x):
    return x * 0.5  # a scalar (rank 0) int8 constant


def sub_vector(x):
    import keras

    return x - keras.ops.convert_to_tensor([[[0.3, -2.0, 5.0]]])  # a (1, 1, 3) int8 constant


def add_relu(x):
    import keras

    return keras.layers.ReLU()(x + 0.25)  # a constant operand and a fused RELU


@pytest.mark.parametrize("build, op", [(mul_scalar, "MUL"), (sub_vector, "SUB"), (add_relu, "ADD")],
                         ids=["mul-scalar", "sub-vector", "add-relu"])
def test_constant_operand_is_bit_exact(build, op):
    model = int8_model(build, [(4, 4, 3)])
    assert op in op_types(model)
    assert_bit_exact(model)


def test_inputs_of_very_different_scales():
    import keras

    # y * 40 gives the ADD's second input ~40x the first one's scale (and a MUL by a scalar).
    model = int8_model(lambda x, y: keras.layers.Add()([x, y * 40.0]), [(3, 5, 3), (3, 5, 3)], calibration=(-2.0, 0.5))
    assert op_types(model) == {"ADD", "MUL"}
    assert_bit_exact(model)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_output_written_over_an_input(op):
    """The planner puts the output on top of the full-size input; the kernel must read before writing."""
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.verify import verify_model

    model = int8_model(binary(op), [(4, 4, 3), (4, 1, 3)], calibration=(-1.0, 3.0))
    graph = parse_tflite(model)
    plan = compile_plan(graph)
    (binary_op,) = [o for o in graph.ops if o.type == op]
    offsets = {plan.places[t].offset for t in binary_op.inputs}
    assert plan.places[binary_op.outputs[0]].offset in offsets
    assert verify_model(model, plan=plan).matched


def test_unsupported_fused_activation_names_the_operator():
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan

    graph = parse_tflite(int8_model(binary("ADD"), [(2, 2, 3), (2, 2, 3)]))
    (index,) = [i for i, o in enumerate(graph.ops) if o.type == "ADD"]
    graph.ops[index].options["fused_activation_function"] = "TANH"
    with pytest.raises(PlanError, match=rf"operator {index} \(ADD\): fused activation TANH is not supported"):
        compile_plan(graph)
