"""Export to ONNX, checking itself: the exported file must reproduce the PyTorch outputs.

Example:
    >>> path = export_onnx(model, task.example_inputs(), "model.onnx")
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeshrink.results import atomic_write_bytes

__all__ = [
    "export_onnx", "ExportMismatch", "ort_session", "run_onnx", "compact_onnx", "save_onnx", "OPSET",
]

OPSET = 18


class ExportMismatch(RuntimeError):
    """The exported file does not compute what the PyTorch model computes."""


def ort_session(path: Path | str, threads: int = 2):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """First output of ``session`` for positional numpy ``inputs``."""
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))[0]


def export_onnx(
    model: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path | str,
    *,
    input_names: tuple[str, ...] = ("input",),
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    check_atol: float | None = 1e-4,
) -> Path:
    """Export ``model`` (FP32, eval mode) to ``path`` with a dynamic batch axis.

    The file is verified with ONNX Runtime against the PyTorch outputs on
    ``example_inputs`` (``check_atol``; None skips the check) and written atomically.
    A user's ONNX model (:class:`edgeshrink.byo.onnx_module.OnnxModule`) is written as it is.
    """
    if hasattr(model, "write_onnx"):
        return model.write_onnx(path)
    model = copy.deepcopy(model).eval()
    axes = {name: {0: "batch"} for name in input_names}
    for name, extra in (dynamic_axes or {}).items():
        axes.setdefault(name, {}).update(extra)
    axes["output"] = {0: "batch"}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, tuple(example_inputs), buf,
            input_names=list(input_names), output_names=["output"],
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
    path = save_onnx(onnx.load_from_string(buf.getvalue()), path)
    if check_atol is not None:
        _verify(model, example_inputs, path, check_atol)
    return path


def _verify(model: nn.Module, example_inputs, path: Path, atol: float) -> None:
    with torch.no_grad():
        expected = model(*example_inputs)
    expected = (expected[0] if isinstance(expected, tuple | list) else expected).numpy()
    got = run_onnx(ort_session(path, 1), tuple(t.numpy() for t in example_inputs))
    err = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if not err <= atol:
        raise ExportMismatch(f"{path.name}: ONNX Runtime differs from PyTorch by {err:.2e} > {atol}")


def compact_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shorten internal tensor and node names and drop shape hints and doc strings.

    What ships to a small device should not carry exporter names such as
    ``/features/features.0/Conv_output_0`` (5-10 % of a small INT8 file). Graph inputs and
    outputs keep their names; graphs with subgraphs (If/Loop) are left as they are.
    """
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        return model
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return renamed.setdefault(name, f"t{len(renamed):x}")

    for t in graph.initializer:
        t.name = short(t.name)
        t.doc_string = ""
    for i, node in enumerate(graph.node):
        node.name = f"n{i:x}"
        node.doc_string = ""
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
    del graph.value_info[:]
    model.doc_string = ""
    return model


def save_onnx(model: onnx.ModelProto, path: Path | str) -> Path:
    """Compact ``model`` (see :func:`compact_onnx`) and write it atomically."""
    path = Path(path)
    atomic_write_bytes(path, compact_onnx(model).SerializeToString())
    return path
