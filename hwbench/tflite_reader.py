"""Reads a `.tflite` file into the graph IR. The only code that knows the TFLite flatbuffer schema.

It uses the generated schema module LiteRT ships (its object API unpacks the whole model), and
checks everything it relies on, so a damaged or unsupported file is one `ModelError` naming
the file and the problem, never an exception from deep inside flatbuffers.

It reads models that are not full-int8 too (float models, int8 bodies with a float tail after a
DEQUANTIZE, int16 activations): their memory and costs are fair questions, and every tensor counts
at its dtype's size. Which dtypes the hwbench runtime executes is the plan compiler's business.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from hwbench.errors import ModelError
from hwbench.graph import KNOWN_OPS, NO_TENSOR, Graph, Op, Quantization, Tensor


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


OPERATOR_NAMES = _enum_names(schema.BuiltinOperator)
TENSOR_TYPE_NAMES = _enum_names(schema.TensorType)
PADDING_NAMES = _enum_names(schema.Padding)
ACTIVATION_NAMES = _enum_names(schema.ActivationFunctionType)

NUMPY_DTYPES = {
    "FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64",
    "INT8": "int8", "UINT8": "uint8", "INT16": "int16", "UINT16": "uint16",
    "INT32": "int32", "UINT32": "uint32", "INT64": "int64", "UINT64": "uint64", "BOOL": "bool",
}

# The option table each operator must carry, since later stages read fields from it.
REQUIRED_OPTIONS = {
    "CONV_2D": "Conv2DOptionsT",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptionsT",
    "AVERAGE_POOL_2D": "Pool2DOptionsT",
    "MAX_POOL_2D": "Pool2DOptionsT",
}
# Operators whose input 1 is a weight matrix or filter of a fixed rank.
WEIGHT_RANK = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 2}

# What a garbage offset inside a flatbuffer can make the generated code raise.
_FLATBUFFER_ERRORS = (struct.error, IndexError, ValueError, TypeError, AttributeError,
                      UnicodeDecodeError, OverflowError, RecursionError, MemoryError)
# struct's message for a read past the end of the data, the usual sign of a truncated file,
# and flatbuffers' for an offset that points outside the 4 GiB a flatbuffer can address.
_PAST_END = re.compile(r"buffer of at least (\d+) bytes")
_BAD_OFFSET = re.compile(r"bad number (-?\d+) for type uint32")


def read_tflite(path: str | Path) -> Graph:
    """Read and validate a single-subgraph `.tflite` model."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a .tflite file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read: {e.strerror}") from None
    return parse_tflite(data, source=str(path))


def parse_tflite(data: bytes, source: str = "<model>") -> Graph:
    if not data:
        raise ModelError(f"{source}: empty file, not a .tflite model")
    if len(data) < 8:  # the root offset and the file identifier alone take 8
        raise ModelError(f"{source}: truncated or not a .tflite model: only {len(data)} bytes")
    if data[4:8] != b"TFL3":
        raise ModelError(f"{source}: not a TFLite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except _FLATBUFFER_ERRORS as e:
        raise ModelError(f"{source}: corrupt or truncated .tflite file ({_unpack_problem(e, len(data))})") from e
    return _GraphBuilder(model, data, source).build()


def _unpack_problem(e: Exception, size: int) -> str:
    """The flatbuffers error in words where it is recognisable: most damage is an offset out of the file."""
    past_end = _PAST_END.search(str(e)) if isinstance(e, struct.error) else None
    bad_offset = _BAD_OFFSET.search(str(e)) if isinstance(e, TypeError) else None
    if past_end and int(past_end.group(1)) > size:
        return f"it refers to data up to byte {int(past_end.group(1)):,} but has only {size:,} bytes"
    if bad_offset:
        position = int(bad_offset.group(1))
        return ("an offset points before the start of the file" if position < 0 else
                f"it refers to byte {position:,} but has only {size:,} bytes")
    if isinstance(e, ValueError) and "buffer is smaller than requested size" in str(e):
        return f"a vector runs past the end of its {size:,} bytes"
    return f"{'struct.error' if isinstance(e, struct.error) else type(e).__name__}: {e}"


def _printable(raw: bytes | None) -> str:
    """Names from the file go into messages: escape control characters a damaged file may hold."""
    text = (raw or b"").decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _GraphBuilder:
    """Turns an unpacked flatbuffer model into a Graph, checking each thing it reads."""

    def __init__(self, model: Any, data: bytes, source: str):
        self.model = model
        self.data = data
        self.source = source

    def fail(self, problem: str) -> ModelError:
        return ModelError(f"{self.source}: {problem}")

    def build(self) -> Graph:
        subgraphs = self.model.subgraphs or []
        if len(subgraphs) != 1:
            raise self.fail(f"has {len(subgraphs)} subgraphs; hwbench supports models with exactly one")
        sub = subgraphs[0]
        # Operators first: an unsupported operator explains the unusual tensor types it brings along.
        tensor_count = len(sub.tensors or [])
        ops = [self.op(i, o, tensor_count) for i, o in enumerate(sub.operators or [])]
        if not ops:
            raise self.fail("has no operators")
        tensors = [self.tensor(i, t) for i, t in enumerate(sub.tensors or [])]
        graph = Graph(
            tensors=tensors,
            ops=ops,
            inputs=self.tensor_indices(sub.inputs, len(tensors), "subgraph input"),
            outputs=self.tensor_indices(sub.outputs, len(tensors), "subgraph output"),
            name=Path(self.source).name,
        )
        for i, op in enumerate(graph.ops):
            self.check_operands(graph, i, op)
        return graph

    def tensor_indices(self, indices: Any, count: int, what: str, optional: bool = False) -> tuple[int, ...]:
        result = tuple(int(i) for i in (indices if indices is not None else []))
        for i in result:
            if not (0 <= i < count or (optional and i == NO_TENSOR)):
                raise self.fail(f"{what} refers to tensor {i}, but the model has {count} tensors")
        return result

    def tensor(self, index: int, t: Any) -> Tensor:
        name = _printable(t.name) or f"tensor{index}"
        type_name = TENSOR_TYPE_NAMES.get(t.type)
        if type_name is None:
            raise self.fail(f"tensor {index} '{name}' has an unknown type code {t.type}")
        if type_name not in NUMPY_DTYPES:  # Tensor.dtype is a numpy dtype name, and sizes come from it
            raise self.fail(f"tensor {index} '{name}' is of type {type_name}, which hwbench does not support")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise self.fail(f"tensor {index} '{name}' has a dynamic shape {shape}; hwbench needs static shapes")
        dtype = NUMPY_DTYPES[type_name]
        tensor = Tensor(name=name, shape=shape, dtype=dtype,
                        quantization=self.quantization(f"tensor {index} '{name}'", shape, dtype, t.quantization))
        tensor.data = self.constant_data(index, tensor, t.buffer)
        return tensor

    def quantization(self, what: str, shape: tuple[int, ...], dtype: str, q: Any) -> Quantization | None:
        """Checks what requantization relies on: positive finite scales, representable zero points."""
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale = np.asarray(q.scale, dtype=np.float32)
        zero_point = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros(len(scale)), dtype=np.int64)
        if len(zero_point) != len(scale):
            raise self.fail(f"{what} has {len(scale)} scales but {len(zero_point)} zero points")
        bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)))
        if len(bad):
            raise self.fail(f"{what} has quantization scale {scale[bad[0]]} (entry {bad[0]}), not a positive number")
        if np.issubdtype(dtype, np.integer):
            low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
            bad = np.flatnonzero((zero_point < low) | (zero_point > high))
            if len(bad):
                raise self.fail(f"{what} has zero point {zero_point[bad[0]]} (entry {bad[0]}), "
                                f"outside the {dtype} range {low}…{high}")
        axis = int(q.quantizedDimension)
        if len(scale) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scale)):
            raise self.fail(f"{what} has {len(scale)} per-channel scales along axis {axis}, but its shape is {shape}")
        return Quantization(scale=scale, zero_point=zero_point, axis=axis)

    def constant_data(self, index: int, tensor: Tensor, buffer_index: int) -> np.ndarray | None:
        buffers = self.model.buffers or []
        if not 0 <= buffer_index < len(buffers):
            raise self.fail(f"tensor {index} '{tensor.name}' refers to buffer {buffer_index} of {len(buffers)}")
        buffer = buffers[buffer_index]
        if buffer.offset > 1:  # large models keep buffers outside the flatbuffer, addressed by offset
            raw = self.data[buffer.offset:buffer.offset + buffer.size]
            if len(raw) != buffer.size:
                raise self.fail(f"tensor {index} '{tensor.name}': buffer {buffer_index} lies past the end of the file")
        elif buffer.data is not None and len(buffer.data) > 0:
            raw = buffer.data.tobytes()
        else:
            return None
        itemsize = np.dtype(tensor.dtype).itemsize
        if len(raw) != tensor.size * itemsize:
            raise self.fail(f"tensor {index} '{tensor.name}': constant data has {len(raw)} bytes, "
                            f"shape {tensor.shape} of {tensor.dtype} needs {tensor.size * itemsize}")
        return np.frombuffer(raw, dtype=tensor.dtype).reshape(tensor.shape)

    def op(self, index: int, o: Any, tensor_count: int) -> Op:
        codes = self.model.operatorCodes or []
        if not 0 <= o.opcodeIndex < len(codes):
            raise self.fail(f"operator {index} refers to operator code {o.opcodeIndex} of {len(codes)}")
        code = codes[o.opcodeIndex]
        # Old files keep the code in the int8 'deprecated' field, new ones in the int32 field.
        op_type = OPERATOR_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if op_type == "CUSTOM":
            custom = _printable(code.customCode) or "?"
            raise self.fail(f"operator {index} is the custom operator '{custom}', which hwbench does not support")
        if op_type not in KNOWN_OPS:
            raise self.fail(f"operator {index} is {op_type or 'of an unknown code'}, which hwbench does not support "
                            f"(supported: {', '.join(sorted(KNOWN_OPS))})")
        return Op(
            type=op_type,
            inputs=self.tensor_indices(o.inputs, tensor_count, f"operator {index} {op_type} input", optional=True),
            outputs=self.tensor_indices(o.outputs, tensor_count, f"operator {index} {op_type} output"),
            options=self.options(index, op_type, o.builtinOptions),
        )

    def options(self, index: int, op_type: str, options: Any) -> dict[str, Any]:
        required = REQUIRED_OPTIONS.get(op_type)
        if required and type(options).__name__ != required:
            raise self.fail(f"operator {index} {op_type} lacks its {required[:-1]} table")
        if options is None:
            return {}
        result = {}
        for key, value in vars(options).items():
            key = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()  # camelCase -> snake_case
            if key == "padding":
                value = self.enum_name(index, op_type, key, PADDING_NAMES, value)
            elif key == "fused_activation_function":
                value = self.enum_name(index, op_type, key, ACTIVATION_NAMES, value)
            elif isinstance(value, np.ndarray):
                value = tuple(value.tolist())
            result[key] = value
        return result

    def enum_name(self, index: int, op_type: str, key: str, names: dict[int, str], value: int) -> str:
        if value not in names:
            raise self.fail(f"operator {index} {op_type}: unknown {key} code {value}")
        return names[value]

    def check_operands(self, graph: Graph, index: int, op: Op) -> None:
        """Checks what later stages rely on: operands present, weights of the rank their costs assume."""
        where = f"operator {index} {op.type}"
        if not op.outputs or not graph.input_tensors(op):
            raise self.fail(f"{where} has no inputs or no outputs")
        if op.type in WEIGHT_RANK:
            if len(op.inputs) < 2 or op.inputs[1] == NO_TENSOR:
                raise self.fail(f"{where} has no weight operand")
            weights = graph.tensors[op.inputs[1]]
            if len(weights.shape) != WEIGHT_RANK[op.type]:
                raise self.fail(f"{where} has weights of shape {weights.shape}, expected rank {WEIGHT_RANK[op.type]}")
