"""`hwbench verify` and the difference report: a plan whose weights were changed must be caught at
the op that reads them."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest

from hwbench.cli import main
from hwbench.tflite_reader import parse_tflite
from firmware_runner.compiler.plan import HEADER, TENSOR, compile_plan
from firmware_runner.runtime.verify import verify_model
from keras_ops import int8_model


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("verify") / "conv.tflite"
    path.write_bytes(int8_model(lambda x: keras.layers.Dense(5)(keras.layers.Flatten()(
        keras.layers.Conv2D(4, 3, activation="relu")(x))), [(6, 6, 2)]))
    return path


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_verify_passes_a_supported_model(conv_model, capsys):
    code, out, _ = run(capsys, "verify", str(conv_model), "--inputs", "4")
    assert code == 0 and "bit-exact" in out and "4 random input" in out
    code, out, _ = run(capsys, "verify", str(conv_model), "--json", "--seed", "3")
    report = json.loads(out)
    assert code == 0 and report["matched"] and report["samples"] == 3 and report["ops"] == 3


def test_a_damaged_weight_is_reported_at_the_op_that_reads_it(conv_model):
    data = conv_model.read_bytes()
    graph = parse_tflite(data, "conv")
    plan = compile_plan(graph, fast=False)  # the reference path reads the bias as it is (a fast one folds it)
    conv_index = next(i for i, op in enumerate(graph.ops) if op.type == "CONV_2D")
    bias = graph.tensors[graph.ops[conv_index].inputs[2]]
    # Find the bias constant in the plan's tensor table and add 1000 to its first element.
    blob = bytearray(plan.blob)
    fields = HEADER.unpack_from(blob)
    tensor_count, tensors_at = fields[6], fields[10]
    for i in range(tensor_count):
        *_, nbytes, offset, location = TENSOR.unpack_from(blob, tensors_at + i * TENSOR.size)
        if location == 1 and bytes(blob[offset:offset + nbytes]) == bias.data.astype("<i4").tobytes():
            struct.pack_into("<i", blob, offset, int(bias.data.flat[0]) + 1000)
    struct.pack_into("<I", blob, 12, zlib.crc32(blob[16:]))
    damaged = dataclasses.replace(plan, blob=bytes(blob))

    result = verify_model(data, samples=2, plan=damaged)
    assert not result.matched
    d = result.difference
    assert (d.op_index, d.op_type, d.sample) == (conv_index, "CONV_2D", 0)
    assert d.index[-1] == 0  # channel 0 is the one whose bias changed
    assert d.expected != d.got and d.count >= 1


def test_verify_refuses_an_unsupported_operator_in_one_line(tmp_path, capsys):
    import keras

    path = tmp_path / "dilated.tflite"
    path.write_bytes(int8_model(lambda x: keras.layers.Conv2D(3, 3, dilation_rate=2)(x), [(9, 9, 2)]))
    assert "CONV_2D" in {op.type for op in parse_tflite(path.read_bytes()).ops}
    code, out, err = run(capsys, "verify", str(path))
    assert code == 1 and out == ""
    assert err.startswith("error:") and "operator 0 (CONV_2D)" in err and "dilation" in err
    assert len(err.strip().splitlines()) == 1
