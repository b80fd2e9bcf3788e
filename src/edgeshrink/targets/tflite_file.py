"""What we read from and write to a ``.tflite`` flatbuffer: its ops, float I/O around a
full-integer graph, TensorFlow Lite Micro's op check, a tensor-arena estimate and the C
array header a microcontroller build compiles in.

Reads and writes go through the flatbuffer schema that ``ai-edge-litert`` ships
(``schema_py_generated`` + ``tools.flatbuffer_utils``), imported inside functions.

Example:
    >>> ops = op_names(Path("m.tflite").read_bytes())
    >>> check_micro_ops(ops)  # raises TargetError naming an op TFLM lacks
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgeshrink.targets.base import TargetError

__all__ = ["TFLM_BUILTIN_OPS", "TFLM_SOURCE", "op_names", "float_tensors", "check_micro_ops",
           "float_io",
           "arena_bytes", "write_c_header", "ARENA_OVERHEAD"]

# Builtin ops that TensorFlow Lite Micro registers (one ``AddXxx()`` each in
# ``MicroMutableOpResolver``), read from tensorflow/tflite-micro
# tensorflow/lite/micro/micro_mutable_op_resolver.h at commit 90b983c2b3f1480642e040bbd2ddb37b
# (2026-08-20; custom ops such as CIRCULAR_BUFFER, TFLite_Detection_PostProcess, ETHOSU and
# the signal library left out). An older TFLM build may lack the newest (BATCH_MATMUL, DIV,
# SUM, ... came after 2022): check the release your firmware links.
TFLM_SOURCE = ("tensorflow/tflite-micro micro_mutable_op_resolver.h @ 90b983c (2026-08-20)")
TFLM_BUILTIN_OPS = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D
DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL
FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF
L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR
LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2
PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND
SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH
TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
""".split())  # noqa: SIM905 (the list as data, one block to diff against the source)

# TFLM's own structures in the arena besides the activations: per-tensor TfLiteEvalTensor
# and per-node TfLiteNode records, the planner's bookkeeping (an estimate: TFLM's
# RecordingMicroAllocator reports the exact figure on the device).
ARENA_OVERHEAD = 2048
_ALIGN = 16  # TFLM aligns every arena buffer to 16 bytes (MicroArenaBufferAlignment)


def _model(data: bytes):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(data))


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert.schema_py_generated import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _op_name(code, names: dict[int, str]) -> str:
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if names.get(builtin) == "CUSTOM":
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return names.get(builtin, f"BUILTIN_{builtin}")


def op_names(data: bytes) -> list[str]:
    """Every op of every subgraph in the flatbuffer, in order (before any delegation)."""
    model = _model(data)
    names = _builtin_names()
    codes = [_op_name(c, names) for c in model.operatorCodes or []]
    return [codes[op.opcodeIndex] for g in model.subgraphs or [] for op in g.operators or []]


def float_tensors(data: bytes) -> list[str]:
    """Names of the float (FLOAT32/FLOAT16) tensors of the main subgraph, constants too:
    empty for a file that is integer end to end."""
    from ai_edge_litert import schema_py_generated as fb

    floats = {fb.TensorType.FLOAT32, fb.TensorType.FLOAT16}
    return [t.name.decode() if isinstance(t.name, bytes) else str(t.name)
            for t in _model(data).subgraphs[0].tensors if t.type in floats]


def check_micro_ops(ops: list[str]) -> None:
    """Raise :class:`TargetError` naming the first op TensorFlow Lite Micro has no kernel for."""
    for op in ops:
        if op not in TFLM_BUILTIN_OPS:
            raise TargetError(f"TensorFlow Lite Micro has no kernel for the op {op} in this "
                              f"model (checked against {TFLM_SOURCE}).")


# ---------------------------------------------------------------------------- float I/O

def float_io(data: bytes) -> bytes:
    """Give a full-integer graph float inputs and outputs: a QUANTIZE op in front of each
    int8 input and a DEQUANTIZE op after each int8 output, with the tensors' own scales.

    litert-torch's static PT2E conversion folds the first quantize and last dequantize into
    the graph's interface (int8 in, int8 out: what TFLM wants); phones and Linux callers
    pass floats, and LiteRT runs the two ops in the file.
    """
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    model = _model(data)
    g = model.subgraphs[0]
    quant_op = _opcode(model, fb.BuiltinOperator.QUANTIZE)
    dequant_op = _opcode(model, fb.BuiltinOperator.DEQUANTIZE)
    renamed: dict[int, int] = {}
    front, back = [], []
    for pos, idx in enumerate(g.inputs):
        if g.tensors[idx].type != fb.TensorType.INT8:
            continue
        new = _float_twin(g, idx, fb)
        front.append(_operator(fb, quant_op, [new], [idx]))
        g.inputs[pos] = renamed[idx] = new
    for pos, idx in enumerate(g.outputs):
        if g.tensors[idx].type != fb.TensorType.INT8:
            continue
        new = _float_twin(g, idx, fb)
        back.append(_operator(fb, dequant_op, [idx], [new]))
        g.outputs[pos] = renamed[idx] = new
    g.operators = front + list(g.operators) + back
    for sig in model.signatureDefs or []:
        for tmap in list(sig.inputs or []) + list(sig.outputs or []):
            tmap.tensorIndex = renamed.get(tmap.tensorIndex, tmap.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _opcode(model, builtin: int) -> int:
    from ai_edge_litert import schema_py_generated as fb

    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, 2)  # int8 variants are version 2
            return i
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 2
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(g, idx: int, fb) -> int:
    """A float32 tensor shaped like ``g.tensors[idx]``, named as it was (the int8 one is
    renamed ``NAME_int8``), appended to the subgraph; returns its index."""
    old = g.tensors[idx]
    t = fb.TensorT()
    t.shape = np.array(old.shape, np.int32)
    t.shapeSignature = old.shapeSignature
    t.type = fb.TensorType.FLOAT32
    t.buffer = 0  # the empty buffer: a runtime tensor
    t.name = old.name
    old.name = (old.name.decode() if isinstance(old.name, bytes) else old.name) + "_int8"
    g.tensors.append(t)
    return len(g.tensors) - 1


def _operator(fb, opcode: int, inputs: list[int], outputs: list[int]):
    op = fb.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.array(inputs, np.int32)
    op.outputs = np.array(outputs, np.int32)
    return op


# ---------------------------------------------------------------------------- arena

_DTYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1,
                "INT16": 2, "INT8": 1, "FLOAT64": 8, "UINT32": 4, "UINT16": 2, "INT4": 1}


def _tensor_bytes(t, type_names: dict[int, str]) -> int:
    n = int(np.prod(t.shape)) if t.shape is not None and len(t.shape) else 1
    return n * _DTYPE_BYTES.get(type_names.get(t.type, ""), 4)


def activation_lifetimes(data: bytes) -> list[tuple[int, int, int]]:
    """``(bytes, first op, last op)`` of every non-constant tensor of the main subgraph:
    inputs live from before op 0, outputs until after the last op."""
    from ai_edge_litert import schema_py_generated as fb

    model = _model(data)
    g = model.subgraphs[0]
    type_names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    const = {i for i, t in enumerate(g.tensors)
             if t.buffer and model.buffers[t.buffer].data is not None
             and len(model.buffers[t.buffer].data)} | {
        i for i, t in enumerate(g.tensors) if t.buffer and model.buffers[t.buffer].size}
    first: dict[int, int] = {int(i): -1 for i in g.inputs}
    last: dict[int, int] = {}
    n_ops = len(g.operators)
    for k, op in enumerate(g.operators):
        for i in op.outputs if op.outputs is not None else []:
            first.setdefault(int(i), k)
        for i in op.inputs if op.inputs is not None else []:
            if int(i) >= 0:
                last[int(i)] = k
    for i in g.outputs:
        last[int(i)] = n_ops
    out = []
    for i, start in first.items():
        if i in const:
            continue
        out.append((_tensor_bytes(g.tensors[i], type_names), start, last.get(i, start)))
    return out


def _plan(buffers: list[tuple[int, int, int]]) -> int:
    """Greedy-by-size offline planning, the idea of TFLM's GreedyMemoryPlanner: place the
    largest buffers first, each at the lowest offset that overlaps (in address) no placed
    buffer alive at the same time. Returns the high-water mark in bytes."""
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    high = 0
    for size, first, last in sorted(buffers, key=lambda b: -b[0]):
        size = -(-size // _ALIGN) * _ALIGN
        live = sorted((o, s) for o, s, f, la in placed if f <= last and first <= la)
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
        high = max(high, offset + size)
    return high


def arena_bytes(data: bytes) -> int:
    """Estimated TFLM tensor arena: planned activations plus :data:`ARENA_OVERHEAD`."""
    return _plan(activation_lifetimes(data)) + ARENA_OVERHEAD


# ---------------------------------------------------------------------------- C header

def c_identifier(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return name if name and not name[0].isdigit() else f"m_{name}"


def write_c_header(tflite: Path) -> Path:
    """``NAME.h`` beside ``NAME.tflite``: the file's bytes as a 16-byte aligned C array
    (TFLM reads the model in place from flash), written atomically."""
    data = tflite.read_bytes()
    name = c_identifier(tflite.stem)
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 12]) for i in range(0, len(data), 12)]
    guard = f"{name.upper()}_TFLITE_H_"
    text = (f"// {tflite.name} as a C array for TensorFlow Lite Micro (written by edgeshrink).\n"
            f"#ifndef {guard}\n#define {guard}\n\n"
            f"alignas(16) const unsigned char {name}_tflite[] = {{\n  "
            + ",\n  ".join(rows)
            + f"\n}};\nconst unsigned int {name}_tflite_len = {len(data)};\n\n#endif  // {guard}\n")
    from edgeshrink.results import atomic_write_text

    out = tflite.with_suffix(".h")
    atomic_write_text(out, text)
    return out
