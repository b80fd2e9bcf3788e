"""An ONNX file standing where a task expects a PyTorch model.

:class:`OnnxModule` runs the user's ``.onnx`` in ONNX Runtime, so that the study's baseline
and reference outputs come from the file itself. Its initializers are exposed as frozen
parameters (for the parameter count) but the forward pass never reads them: techniques that
edit PyTorch layers are refused for it (:mod:`edgeshrink.byo.applicable`), and the ONNX
techniques start from :meth:`OnnxModule.write_onnx`, the user's graph unchanged.

Example:
    >>> m = OnnxModule.from_file("model.onnx")  # doctest: +SKIP
    >>> m(torch.zeros(2, 1, 8, 8)).shape  # doctest: +SKIP
    torch.Size([2, 10])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgeshrink.errors import UserError

__all__ = ["OnnxModule"]


class OnnxModule(nn.Module):
    """A module whose forward runs an ONNX model (first output) in ONNX Runtime on the CPU."""

    def __init__(self, proto: onnx.ModelProto, source: str = "model.onnx") -> None:
        super().__init__()
        self._bytes = proto.SerializeToString()
        self.source = source
        self.input_names = tuple(_graph_inputs(proto))
        self._session = None
        weights = nn.ParameterDict()
        for i, init in enumerate(proto.graph.initializer):
            arr = onnx.numpy_helper.to_array(init)
            if arr.dtype.kind == "f" and arr.ndim >= 1:
                weights[f"w{i}"] = nn.Parameter(torch.from_numpy(arr.copy()), requires_grad=False)
        self.initializers = weights

    @classmethod
    def from_file(cls, path: Path | str) -> OnnxModule:
        """Load ``path``; a fixed batch axis is made dynamic where the graph allows it."""
        path = Path(path)
        try:
            proto = onnx.load(str(path))
            onnx.checker.check_model(proto)
        except Exception as exc:  # protobuf / checker errors: a corrupt or foreign file
            raise UserError(f"{path} is not a valid ONNX model ({_first_line(exc)}).") from None
        return cls(_dynamic_batch(proto), source=path.name)

    def proto(self) -> onnx.ModelProto:
        return onnx.load_from_string(self._bytes)

    def write_onnx(self, path: Path | str) -> Path:
        """Write the user's graph, unchanged, to ``path`` (atomically)."""
        from edgeshrink.results import atomic_write_bytes

        atomic_write_bytes(path, self._bytes)
        return Path(path)

    def graph_macs(self) -> tuple[int, int]:
        """(MACs, activation elements) of one sample, from the graph's inferred shapes:
        Conv, Gemm and MatMul count; an op whose shapes stay unknown counts nothing."""
        proto = self.proto()
        for v in proto.graph.input:
            dims = v.type.tensor_type.shape.dim
            if dims and not dims[0].HasField("dim_value"):
                dims[0].dim_value = 1
        try:
            proto = onnx.shape_inference.infer_shapes(proto)
        except Exception:  # a graph shape inference cannot follow: no estimate
            return 0, 0
        g = proto.graph
        shapes = {t.name: list(t.dims) for t in g.initializer}
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        macs = elems = 0
        for node in g.node:
            out = shapes.get(node.output[0], [])
            if not out or 0 in out:
                continue
            elems += int(np.prod(out))
            macs += int(np.prod(out)) * _reduction(node, shapes)
        return macs, elems

    def matmul_dominated(self, group_size: int = 32) -> bool:
        """As :func:`edgeshrink.quant.ort.matmul_dominated`, from the graph: constant
        MatMul/Gemm weights hold most parameters and every reduction size divides by the
        group (then weight-only INT4 applies)."""
        g = self.proto().graph
        inits = {t.name: list(t.dims) for t in g.initializer}
        total = sum(int(np.prod(d)) for d in inits.values())
        sizes = []
        for node in g.node:
            w = inits.get(node.input[1]) if len(node.input) > 1 else None
            if node.op_type in ("MatMul", "Gemm") and w and len(w) == 2:
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                sizes.append((int(np.prod(w)), w[1] if node.op_type == "Gemm" and trans_b else w[0]))
        return bool(sizes) and sum(n for n, _ in sizes) > total / 2 and all(
            k % group_size == 0 for _, k in sizes)

    def session(self):
        if self._session is None:
            self._session = ort_session_from_bytes(self._bytes)
        return self._session

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        sess = self.session()
        feed = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs, strict=True)}
        return torch.from_numpy(np.asarray(sess.run(None, feed)[0]))

    def __getstate__(self) -> dict:  # deepcopy/pickle: the session is rebuilt on demand
        state = self.__dict__.copy()
        state["_session"] = None
        return state


def ort_session_from_bytes(data: bytes, threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _reduction(node, shapes: dict) -> int:
    """Multiply-accumulates per output element of a Conv / Gemm / MatMul node (else 0)."""
    w = shapes.get(node.input[1], []) if len(node.input) > 1 else []
    if not w or 0 in w:
        return 0
    if node.op_type == "Conv":
        return int(np.prod(w[1:]))
    if node.op_type == "Gemm":
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        return int(w[1] if trans_b else w[0])
    if node.op_type == "MatMul":
        return int(w[-2]) if len(w) >= 2 else int(w[0])
    return 0


def _graph_inputs(proto: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in inits]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def _dynamic_batch(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Name the first axis of every input and output ``batch`` when it is a fixed number.

    Studies evaluate in batches; a graph whose inner shapes still fix the batch then fails
    on a batch of 2, and that is one sentence naming the fix.
    """
    inits = {t.name for t in proto.graph.initializer}
    fixed = [v for v in list(proto.graph.input) + list(proto.graph.output)
             if v.name not in inits and v.type.tensor_type.shape.dim
             and v.type.tensor_type.shape.dim[0].HasField("dim_value")]
    if not fixed:
        return proto
    for v in fixed:
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    try:
        sess = ort_session_from_bytes(proto.SerializeToString(), 1)
        feed = {}
        for i in sess.get_inputs():
            shape = [2] + [d if isinstance(d, int) else 1 for d in i.shape[1:]]
            feed[i.name] = np.zeros(shape, _np_type(i.type))
        sess.run(None, feed)
    except Exception:
        raise UserError("the ONNX model has a fixed batch size that its graph depends on; "
                        "export it with a dynamic batch axis (torch.onnx.export(..., "
                        "dynamic_axes={'input': {0: 'batch'}})).") from None
    return proto


def _np_type(ort_type: str):
    return {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
            "tensor(double)": np.float64, "tensor(float16)": np.float16,
            "tensor(bool)": np.bool_}.get(ort_type, np.float32)
