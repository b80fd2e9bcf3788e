"""Tiny ONNX models built with onnx.helper (no torch): milliseconds to build and run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # what onnxruntime >= 1.16 reads
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_mlp(path: Path, *, width: int = 32, layers: int = 1, batch="N", seed: int = 0) -> Path:
    """X[batch, 16] -> (MatMul width -> Relu) * layers -> MatMul 4 -> Y."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, dim = [], [], "X", 16
    for i in range(layers):
        w = numpy_helper.from_array(rng.standard_normal((dim, width), dtype=np.float32), f"W{i}")
        inits.append(w)
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"h{i}"]),
                  helper.make_node("Relu", [f"h{i}"], [f"r{i}"])]  # fmt: skip
        prev, dim = f"r{i}", width
    inits.append(numpy_helper.from_array(rng.standard_normal((dim, 4), dtype=np.float32), "Wo"))
    nodes.append(helper.make_node("MatMul", [prev, "Wo"], ["Y"]))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, 4])],
        inits,
    )
    return _save(graph, path)


def make_token_model(path: Path) -> Path:
    """ids: int64 [batch, seq] -> Y = float(ids): a dynamic non-batch dimension."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["Y"], to=TensorProto.FLOAT)],
        "tokens",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", "seq"])],
    )
    return _save(graph, path)
