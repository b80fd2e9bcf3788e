"""A PyTorch simulation of a deployed quantized ONNX artifact.

The artifact's graph is executed op by op in PyTorch; every activation QuantizeLinear ->
DequantizeLinear pair becomes ``torch.fake_quantize_per_tensor_affine`` (or
``_per_channel_affine``) with the scale and zero point read from the file, quantized
weights are dequantized from their stored integers, ``DynamicQuantizeLinear`` /
``MatMulInteger`` (dynamic INT8) and ``MatMulNBits`` (weight-only INT4) are computed from
their definitions, and FP16 casts round in half precision. Agreement between this and ONNX
Runtime shows that the runtime executes the quantization we think it does.

Example:
    >>> sim = QdqSimulator("model_int8.onnx")
    >>> logits = sim(x_numpy)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

from edgeshrink.errors import UserError

__all__ = ["QdqSimulator", "simulate_outputs"]

_QRANGE = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int32: (-(2**31), 2**31 - 1)}
_ONNX_TO_TORCH = {1: torch.float32, 10: torch.float16, 11: torch.float64, 6: torch.int32,
                  7: torch.int64, 2: torch.uint8, 3: torch.int8, 9: torch.bool}  # fmt: skip


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, axis: int) -> torch.Tensor:
    qmin, qmax = _QRANGE[zp.dtype]
    if scale.numel() == 1:
        return torch.fake_quantize_per_tensor_affine(
            x.float(), float(scale), int(zp.reshape(-1)[0]), qmin, qmax
        )
    return torch.fake_quantize_per_channel_affine(
        x.float(), scale.float(), zp.to(torch.int32), axis % x.dim(), qmin, qmax
    )


def _dequant(q: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor | None, axis: int):
    shape = [1] * q.dim()
    if scale.numel() > 1:
        shape[axis % q.dim()] = -1
    zero = 0.0 if zp is None else zp.double().reshape(shape)
    return ((q.double() - zero) * scale.double().reshape(shape)).float()


def _conv(x, w, b=None, *, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, **_):
    n = len(strides)
    if list(pads[:n]) != list(pads[n:]):
        x = F.pad(x, [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])])
        pads = (0,) * (2 * n)
    conv = F.conv2d if n == 2 else F.conv1d
    return conv(x, w.to(x.dtype), None if b is None else b.to(x.dtype), strides, pads[:n],
                dilations, group)  # fmt: skip


def _maxpool(x, *, kernel_shape, strides=None, pads=(0, 0, 0, 0), ceil_mode=0, **_):
    n = len(kernel_shape)
    return F.max_pool2d(x, kernel_shape, strides or kernel_shape, pads[:n], ceil_mode=bool(ceil_mode))


def _avgpool(x, *, kernel_shape, strides=None, pads=(0, 0, 0, 0), **_):
    n = len(kernel_shape)
    return F.avg_pool2d(x, kernel_shape, strides or kernel_shape, pads[:n])


def _gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):  # noqa: N803
    a = a.T if transA else a
    b = b.T if transB else b
    y = alpha * (a @ b.to(a.dtype))
    return y if c is None else y + beta * c.to(a.dtype)


def _flatten(x, *, axis=1):
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _reshape(x, shape, **_):
    shape = [x.shape[i] if s == 0 else int(s) for i, s in enumerate(shape.tolist())]
    return x.reshape(shape)


def _clip(x, lo=None, hi=None, **_):
    return torch.clamp(x, None if lo is None else float(lo), None if hi is None else float(hi))


def _dynamic_quantize(x):
    # ONNX DynamicQuantizeLinear: uint8, range always containing 0.
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255 or 1.0
    zp = float(np.clip(np.round(-lo / scale), 0, 255))
    q = torch.clamp(torch.round(x.double() / scale) + zp, 0, 255).to(torch.uint8)
    return q, torch.tensor(scale, dtype=torch.float32), torch.tensor(zp).to(torch.uint8)


def _matmul_integer(a, b, a_zp=None, b_zp=None):
    a = a.double() - (0 if a_zp is None else a_zp.double())
    b = b.double() - (0 if b_zp is None else b_zp.double())
    return (a @ b).to(torch.int32)


def _matmul_nbits(a, b, scales, zp=None, *rest, K, N, bits=4, block_size, **_):  # noqa: N803
    """ORT's MatMulNBits: B packed [N, blocks, bytes], low bits first; zero point 2**(bits-1)
    when absent (contrib op documentation)."""
    blocks = b.shape[1]
    per_byte = 8 // bits
    raw = b.to(torch.int32).reshape(N, blocks, -1)
    vals = torch.stack([(raw >> (bits * i)) & (2**bits - 1) for i in range(per_byte)], -1)
    q = vals.reshape(N, blocks, block_size).double()
    if zp is None:
        z = torch.full((N, blocks, 1), 2.0 ** (bits - 1), dtype=torch.float64)
    else:
        zr = zp.to(torch.int32).reshape(N, -1)
        zs = torch.stack([(zr >> (bits * i)) & (2**bits - 1) for i in range(per_byte)], -1)
        z = zs.reshape(N, -1)[:, :blocks].double().unsqueeze(-1)
    w = ((q - z) * scales.double().reshape(N, blocks, 1)).reshape(N, -1)[:, :K]
    y = a @ w.T.to(a.dtype)
    bias = rest[2] if len(rest) > 2 else None
    return y if bias is None else y + bias


_OPS: dict[str, Callable] = {
    "Conv": _conv, "Gemm": _gemm, "MaxPool": _maxpool, "AveragePool": _avgpool,
    "Flatten": _flatten, "Reshape": _reshape, "Clip": _clip,
    "MatMul": lambda a, b: a @ b.to(a.dtype), "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b, "Div": lambda a, b: a / b,
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Identity": lambda x: x,
    "GlobalAveragePool": lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "Transpose": lambda x, perm=None: x.permute(*perm) if perm else x.T,
    "Concat": lambda *xs, axis: torch.cat(xs, axis),
    "Softmax": lambda x, axis=-1: torch.softmax(x, axis),
    "Cast": lambda x, to: x.to(_ONNX_TO_TORCH[to]),
    "Shape": lambda x, **_: torch.tensor(x.shape, dtype=torch.int64),
    "PRelu": lambda x, s: torch.where(x >= 0, x, x * s),
    "DynamicQuantizeLinear": _dynamic_quantize, "MatMulInteger": _matmul_integer,
    "MatMulNBits": _matmul_nbits,
}  # fmt: skip


def topological_nodes(graph, ready: set[str]) -> list:
    """Nodes in an executable order (the FP16 converter appends its input Casts at the end)."""
    pending, order, ready = list(graph.node), [], set(ready) | {""}
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise UserError("the ONNX graph has a cycle or an input without a producer.")
        done = {id(n) for n in runnable}
        for n in runnable:
            order.append(n)
            ready.update(n.output)
        pending = [n for n in pending if id(n) not in done]
    return order


class QdqSimulator:
    """Callable running a quantized ONNX file in PyTorch with fake quantization.

    Args:
        path: an ONNX file made by :func:`edgeshrink.quant.quantize` (QDQ INT8, dynamic INT8,
            FP16 or weight-only INT4).
    """

    def __init__(self, path: Path | str) -> None:
        self.model = onnx.load(str(path))
        g = self.model.graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
                       for t in g.initializer}  # fmt: skip
        self.producer = {o: n for n in g.node for o in n.output}
        self.nodes = topological_nodes(g, set(self.consts) | {i.name for i in g.input})
        unknown = sorted({n.op_type for n in g.node} - set(_OPS) - {"QuantizeLinear",
                                                                  "DequantizeLinear"})
        if unknown:
            raise UserError(f"the simulator cannot run op(s) {', '.join(unknown)} of {path}.")

    def _dq(self, node, env: dict) -> torch.Tensor:
        axis = _attrs(node).get("axis", 1)
        src, scale = node.input[0], env[node.input[1]]
        zp = env[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        q_node = self.producer.get(src)
        if q_node is not None and q_node.op_type == "QuantizeLinear":
            # Q -> DQ on an activation: fake quantization of Q's float input.
            x = env[q_node.input[0]]
            zp = zp if zp is not None else torch.zeros(1, dtype=torch.uint8)
            return _fake_quant(x, scale, zp, axis)
        return _dequant(env[src], scale, zp, axis)

    @torch.no_grad()
    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        g = self.model.graph
        env = dict(self.consts)
        names = [i.name for i in g.input if i.name not in self.consts]
        env.update({n: torch.from_numpy(np.asarray(x)) for n, x in zip(names, inputs, strict=True)})
        for node in self.nodes:
            if node.op_type == "QuantizeLinear":
                continue  # folded into its DequantizeLinear
            if node.op_type == "DequantizeLinear":
                env[node.output[0]] = self._dq(node, env)
                continue
            args = [env[i] if i else None for i in node.input]
            while args and args[-1] is None:
                args.pop()
            out = _OPS[node.op_type](*args, **_attrs(node))
            outs = out if isinstance(out, tuple) else (out,)
            env.update(zip(node.output, outs, strict=False))
        return env[g.output[0].name].float().numpy()


def simulate_outputs(path: Path | str, batches) -> np.ndarray:
    """The simulation's first output over ``batches`` (tuples of numpy inputs), stacked."""
    sim = QdqSimulator(path)
    return np.concatenate([sim(*b) for b in batches])
