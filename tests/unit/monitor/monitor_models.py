"""A tiny ONNX classifier built with onnx.helper (no torch) and its inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_classifier(path: Path, seed: int = 0, noise: float = 0.0) -> Path:
    """X[N, 16] -> MatMul W[16, 5] -> logits Y[N, 5]; ``noise`` perturbs W (a 'compressed'
    copy of the seed-0 model)."""
    w = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    w += noise * np.random.default_rng(seed).standard_normal((16, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "clf",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "W")])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def inputs(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal((n, 16))).astype(np.float32)


