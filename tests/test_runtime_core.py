"""The plan format and the host runtime, on models whose ops need no arithmetic."""

from __future__ import annotations

import pytest

from keras_ops import assert_bit_exact, int8_model, op_types


def test_reshape_model_round_trips_through_the_host_runtime():
    import keras

    model = int8_model(lambda x: keras.layers.Reshape((12, 6))(x), [(4, 6, 3)])
    assert op_types(model) == {"RESHAPE"}
    assert assert_bit_exact(model).output_bytes == 72
