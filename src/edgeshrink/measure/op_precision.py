"""Which precision each MAC-bearing op of a shipped file really runs in, and its MACs.

A file labelled ``int8`` is not all int8: ONNX Runtime's dynamic quantization of a CNN
quantizes only MatMul/Gemm and leaves every Conv in FP32; a QDQ file runs a Conv in int8
only where both its input and its weight come through DequantizeLinear. The device
estimate (:mod:`edgeshrink.devices.estimate`) weights each op's MACs by the rate of the
precision it runs in, read here from the file itself:

* ONNX: QLinearConv, ConvInteger, MatMulInteger, QLinearMatMul, QGemm and Conv/Gemm/MatMul
  whose input and weight are both dequantized count as int8; MatMulNBits as int4; the rest
  as fp16 where the weight is fp16, else fp32. MACs from the graph's inferred shapes.
* LiteRT (``.tflite``): the dtypes of each op's input and weight tensors (an int8 weight
  under a float input runs LiteRT's hybrid kernels, which quantize the input on the fly).
* ExecuTorch (``.pte``): the XNNPACK delegate's contents are not read; the split is
  ``None`` and the estimate uses the artifact's precision, labelled as such, with the
  MAC-bearing ops that run outside any delegate (portable FP32 kernels) named.

Example:
    >>> macs_by_precision("lenet-int8-dynamic.onnx")  # doctest: +SKIP
    {'fp32': 82944, 'int8': 8832}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["macs_by_precision", "precision_notes", "onnx_op_macs", "tflite_op_macs",
           "pte_ops", "SPLIT_FROM_FILE", "SPLIT_FROM_LABEL"]

SPLIT_FROM_FILE = "each op of the shipped file"
SPLIT_FROM_LABEL = "the artifact's precision label (the file's ops are not read for this runtime)"

_INT_OPS = {"QLinearConv": 3, "ConvInteger": 1, "QLinearMatMul": 3, "MatMulInteger": 1,
            "QGemm": 3}  # op -> index of its weight input
_FLOAT_OPS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}
_CONV_LIKE = {"Conv", "ConvInteger", "QLinearConv"}


def macs_by_precision(path: Path | str) -> dict[str, int] | None:
    """``{precision: MACs}`` of one inference (batch 1) of the file at ``path``, by the
    precision each op executes in; ``None`` where the file's ops cannot be read."""
    path = Path(path)
    try:
        if path.suffix == ".onnx":
            ops = onnx_op_macs(path)
        elif path.suffix == ".tflite":
            ops = tflite_op_macs(path)
        else:
            return None
    except Exception:  # an unreadable graph only costs the estimate its split
        return None
    out: dict[str, int] = {}
    for _name, precision, macs in ops:
        out[precision] = out.get(precision, 0) + int(macs)
    return out if sum(out.values()) > 0 else None


def precision_notes(path: Path | str) -> dict:
    """The notes a candidate record keeps: ``macs_by_precision`` where the file's ops were
    read, and ``macs_by_precision_from`` saying where the estimate's precision comes from."""
    split = macs_by_precision(path)
    if split:
        return {"macs_by_precision": split, "macs_by_precision_from": SPLIT_FROM_FILE}
    why = SPLIT_FROM_LABEL
    if Path(path).suffix == ".pte":
        try:
            facts = pte_ops(path)
        except Exception:  # an ExecuTorch that cannot read it: the label alone
            facts = None
        if facts and facts["undelegated_mac_ops"]:
            why += ("; outside any delegate, in portable FP32 kernels: "
                    + ", ".join(facts["undelegated_mac_ops"]))
        elif facts and facts["delegates"]:
            why += f"; every MAC-bearing op runs in {', '.join(facts['delegates'])}"
    return {"macs_by_precision_from": why}


def pte_ops(path: Path | str) -> dict[str, list[str]]:
    """``{"delegates": [backend ids], "undelegated_mac_ops": [op names]}`` of a ``.pte``:
    what ExecuTorch's own deserializer says runs outside the delegates."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(program, "program", program)  # newer releases wrap it in a PTEFile
    delegates, undelegated = set(), set()
    for plan in program.execution_plan:
        delegates |= {d.id for d in plan.delegates}
        undelegated |= {o.name for o in plan.operators
                        if o.name.split("::")[-1] in _PTE_MAC_OPS}
    return {"delegates": sorted(delegates), "undelegated_mac_ops": sorted(undelegated)}


_PTE_MAC_OPS = {"convolution", "addmm", "mm", "bmm", "linear", "matmul", "conv2d",
                "quantized_linear", "quantized_conv2d"}


# ---------------------------------------------------------------- ONNX


def _dtype_precision(dtype) -> str:
    import onnx_ir as ir

    return {ir.DataType.INT8: "int8", ir.DataType.UINT8: "int8", ir.DataType.INT4: "int4",
            ir.DataType.UINT4: "int4", ir.DataType.INT16: "int16", ir.DataType.UINT16: "int16",
            ir.DataType.FLOAT16: "fp16", ir.DataType.BFLOAT16: "bf16"}.get(dtype, "fp32")


def _dims(value) -> list[int] | None:
    if value is None or value.shape is None:
        return None
    dims = [d if isinstance(d, int) else None for d in value.shape.dims]
    return None if None in dims else dims


def _dequantized(value) -> str | None:
    """The integer precision of ``value`` when a DequantizeLinear writes it, else None."""
    node = value.producer() if value is not None else None
    if node is None or node.op_type != "DequantizeLinear":
        return None
    return _dtype_precision(node.inputs[0].dtype)


def _onnx_precision(node) -> str:
    if node.op_type in _INT_OPS:
        return "int8"
    if node.op_type == "MatMulNBits":
        return "int4"
    data, weight = node.inputs[0], node.inputs[1]
    qd, qw = _dequantized(data), _dequantized(weight)
    if qd and qw:  # ORT and TensorRT fuse DQ -> op -> Q into one integer kernel
        return qw
    dtype = weight.dtype if weight is not None else None
    return "fp16" if _dtype_precision(dtype) == "fp16" else "fp32"


def _onnx_macs(node) -> int:
    """MACs of one MAC-bearing node from its inferred shapes (0 where a shape is unknown)."""
    op = node.op_type
    out = _dims(node.outputs[0])
    if op == "MatMulNBits":
        a = _dims(node.inputs[0])
        k = next((a_.value for a_ in node.attributes.values() if a_.name == "K"), None)
        n = next((a_.value for a_ in node.attributes.values() if a_.name == "N"), None)
        return int(np.prod(a[:-1])) * int(k) * int(n) if a and k and n else 0
    if out is None:
        return 0
    if op in _CONV_LIKE:
        w = _dims(node.inputs[_INT_OPS.get(op, 1)])
        return int(np.prod(out)) * int(np.prod(w[1:])) if w else 0
    if op == "ConvTranspose":
        x, w = _dims(node.inputs[0]), _dims(node.inputs[1])
        return int(np.prod(x)) * int(np.prod(w[1:])) if x and w else 0
    a = _dims(node.inputs[0])
    if not a:
        return 0
    trans_a = op in ("Gemm", "QGemm") and bool(
        node.attributes.get("transA") and node.attributes["transA"].value)
    return int(np.prod(out)) * int(a[0] if trans_a else a[-1])


def onnx_op_macs(path: Path | str) -> list[tuple[str, str, int]]:
    """``[(node name, precision, MACs)]`` for every MAC-bearing node of an ONNX file
    (symbolic dims, such as the batch, are taken as 1)."""
    import onnx
    import onnx_ir as ir

    model = ir.load(str(path))
    model.graph.sort()  # fp16 files list their input Cast last; inference runs in order
    for v in model.graph.inputs:  # batch 1: fix the symbolic dims before inferring shapes
        if v.shape is not None:
            v.shape = ir.Shape([d if isinstance(d, int) else 1 for d in v.shape.dims])
    model = ir.from_proto(onnx.shape_inference.infer_shapes(ir.to_proto(model)))
    ops = []
    for node in model.graph.all_nodes():
        if node.op_type in _INT_OPS or node.op_type in _FLOAT_OPS or node.op_type == "MatMulNBits":
            ops.append((node.name or node.op_type, _onnx_precision(node), _onnx_macs(node)))
    return ops


# ---------------------------------------------------------------- LiteRT


def _tfl_precision(dtype) -> str:
    return {np.dtype(np.int8): "int8", np.dtype(np.uint8): "int8",
            np.dtype(np.int16): "int16", np.dtype(np.float16): "fp16"}.get(np.dtype(dtype), "fp32")


def tflite_op_macs(path: Path | str) -> list[tuple[str, str, int]]:
    """``[(op name, precision, MACs)]`` for every MAC-bearing op of a ``.tflite`` file, from
    LiteRT's own reading of it (``ai_edge_litert``'s interpreter, no inference run)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # the only public-ish per-op view LiteRT offers
    producer = {o: op for op in ops for o in op["outputs"]}
    out = []
    for op in ops:
        name = op["op_name"]
        macs = _tfl_macs(name, op, tensors)
        if macs is None:
            continue
        widx = op["inputs"][1]
        xidx = op["inputs"][2 if name == "TRANSPOSE_CONV" else 0]
        x, w = tensors.get(xidx), tensors.get(widx)
        px = _tfl_precision(x["dtype"]) if x else "fp32"
        pw = _tfl_precision(w["dtype"]) if w else "fp32"
        src = producer.get(widx)
        if pw == "fp32" and src is not None and src["op_name"] == "DEQUANTIZE":
            pw = _tfl_precision(tensors[src["inputs"][0]]["dtype"])  # fp16 weights, expanded
            pw = "fp16" if pw == "fp16" else "fp32"  # int8 expanded to float runs in float
        precision = px if px != "fp32" else (pw if pw in ("int8", "fp16") else "fp32")
        out.append((f"{name}#{op['index']}", precision, macs))
    return out


def _tfl_macs(name: str, op: dict, tensors: dict) -> int | None:
    def shape(i):
        t = tensors.get(op["inputs"][i] if i >= 0 else op["outputs"][0])
        return [int(d) for d in t["shape"]] if t is not None else []

    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL",
                    "TRANSPOSE_CONV", "CONV_3D"):
        return None
    out = int(np.prod(shape(-1)))
    if name == "CONV_2D":
        return out * int(np.prod(shape(1)[1:]))  # weights [O, H, W, I]
    if name == "DEPTHWISE_CONV_2D":
        w = shape(1)  # [1, H, W, O]
        return out * w[1] * w[2]
    if name == "CONV_3D":
        return out * int(np.prod(shape(1)[:4]))  # weights [D, H, W, I, O]
    if name == "TRANSPOSE_CONV":
        w = shape(1)  # inputs: output shape, weights [O, H, W, I], input
        return int(np.prod(shape(2))) * w[0] * w[1] * w[2]
    return out * shape(0)[-1]  # FULLY_CONNECTED, BATCH_MATMUL: reduction = input's last dim
