"""Dynamic INT8 with one activation scale per token (row), run by ONNX Runtime's integer MatMul.

ONNX Runtime's dynamic quantization (``DynamicQuantizeLinear``) picks one scale for the whole
activation tensor: on BERT-style encoders a few tokens (delimiters, padding) with large
activations stretch that range for all 128 tokens (Bondarenko et al. 2021, "Understanding
and Overcoming the Challenges of Efficient Transformer Quantization"). Here each row of a
chosen layer's input gets its own scale (and zero point unless symmetric), the per-token
scheme of LLM.int8()/ZeroQuant (Dettmers et al. 2022; Yao et al. 2022). ORT has no fused
per-row kernel, so the graph spells it out with standard ops:

``QuantizeLinear(axis=0)`` with per-row scales -> ``MatMulIntegerToFloat`` (U8S8, int8
per-channel weights) -> ``* row scale`` (``- row zero point x weight column sums``).

Layers not chosen get ORT's per-tensor dynamic INT8 (as :class:`DynamicInt8Config`).
Measured on all-MiniLM-L6-v2 (benchmarks/RESULTS.md, pretrained): FFN output layers alone
lift mean cosine from 0.9919 to 0.9952 for ~4 % more latency; every layer: 0.9987.

Example:
    >>> art = quantize(model, PerTokenInt8Config(layers=(r"output\\.dense$",)), data)
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeshrink.config import Config, check_regex, register_config
from edgeshrink.errors import UserError
from edgeshrink.export import save_onnx
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["PerTokenInt8Config", "quantize_weight", "per_token_matmuls"]

_MS = "com.microsoft"


@register_config
@dataclass(frozen=True)
class PerTokenInt8Config(Config):
    """INT8 weights (per channel) and INT8 activations with a scale per token.

    Attributes:
        layers: regexes (``re.search``) on ONNX node names or PyTorch module names of the
            Linear/MatMul layers that get per-token activation scales; ``(".",)`` is all.
            Other MatMul/Gemm layers get ORT's per-tensor dynamic INT8.
        symmetric: one scale per token and a fixed zero point (128): one Mul fewer per
            layer. Asymmetric (a zero point per token) suits one-signed inputs (GELU
            outputs) and was the more faithful on MiniLM (cosine 0.9987 vs 0.9970).

    Example:
        >>> cfg = PerTokenInt8Config(layers=(r"intermediate\\.dense$", r"output\\.dense$"))
    """

    kind = "int8_per_token"
    stage = "artifact"
    family = "quantization"
    layers: tuple[str, ...] = (".",)
    symmetric: bool = False

    def __post_init__(self) -> None:

        if not self.layers:
            raise UserError("layers is empty; name at least one layer regex (\".\" for all).")
        check_regex("layers", *self.layers)


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column of ``w`` (K, N): ``(wq int8, scale float32 (N,))``.

    Example:
        >>> wq, s = quantize_weight(np.eye(2, dtype=np.float32))
    """
    scale = (np.maximum(np.abs(w).max(0), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


class _Graph:
    """Appends nodes and initializers with unique names under one prefix."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph, self.nodes, self.inits = graph, [], []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op: str, inputs: list[str], out: str, domain: str = "", **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], out + "_" + op, domain=domain,
                                           **attrs))  # fmt: skip
        return out


def _quantize_rows(b: _Graph, x: str, k: int, p: str, symmetric: bool) -> tuple[str, ...]:
    """Nodes quantizing ``x`` (..., K) row by row, as rows (R, K): ``(q uint8 (R, K),
    scale (R, 1), scale x zero point (R, 1) or "" when symmetric, leading shape of x)``."""
    lead = b.op("Slice", [b.op("Shape", [x], p + "shape"), "pt_0", "pt_m1"], p + "lead")
    x2 = b.op("Reshape", [x, b.const(p + "k2", np.array([-1, k], np.int64))], p + "x2")
    hi = b.op("ReduceMax", [x2, "pt_m1"], p + "hi", keepdims=0)
    lo = b.op("ReduceMin", [x2, "pt_m1"], p + "lo", keepdims=0)
    if symmetric:  # |x| <= 127 s around a fixed zero point 128 (uint8 for the U8S8 kernel)
        amax = b.op("Max", [hi, b.op("Neg", [lo], p + "nlo")], p + "amax")
        s = b.op("Max", [b.op("Mul", [amax, "pt_i127"], p + "s0"), "pt_eps"], p + "s")
        zp = b.op("Add", [b.op("Mul", [s, "pt_zero"], p + "z0"), "pt_128"], p + "zp")
    else:  # the range always holds 0, so that 0 (padding, ReLU zeros) is exact
        hi, lo = b.op("Max", [hi, "pt_zero"], p + "hi0"), b.op("Min", [lo, "pt_zero"], p + "lo0")
        rng = b.op("Mul", [b.op("Sub", [hi, lo], p + "rng"), "pt_i255"], p + "s0")
        s = b.op("Max", [rng, "pt_eps"], p + "s")
        zp = b.op("Round", [b.op("Div", [b.op("Neg", [lo], p + "nlo"), s], p + "z0")], p + "zp")
    zp8 = b.op("Cast", [zp], p + "zp8", to=TensorProto.UINT8)
    q = b.op("QuantizeLinear", [x2, s, zp8], p + "q", axis=0)
    scol = b.op("Unsqueeze", [s, "pt_1"], p + "scol")
    zs = "" if symmetric else b.op("Unsqueeze", [b.op("Mul", [zp, s], p + "zs1"), "pt_1"],
                                   p + "zs")  # fmt: skip
    return q, scol, zs, lead


def _matmul(b: _Graph, q: tuple[str, ...], w: np.ndarray, out: str, p: str,
            symmetric: bool) -> None:  # fmt: skip
    """``out = x @ w`` from the row-quantized ``q``: integer product, then row/column scales."""
    wq, sw = quantize_weight(w)
    qx, scol, zs, lead = q
    zp_in = ["pt_u128"] if symmetric else []  # scalar zero points are all ORT takes
    mm = b.op("MatMulIntegerToFloat", [qx, b.const(p + "wq", wq), "pt_one",
                                       b.const(p + "sw", sw), *zp_in], p + "mm", domain=_MS)  # fmt: skip
    y = b.op("Mul", [mm, scol], p + "ys")
    if not symmetric:  # x = s (q - zp): x @ w = s (q @ wq) sw - (s zp) (sum_k wq) sw
        colsum = (wq.astype(np.int64).sum(0) * sw).astype(np.float32)
        y = b.op("Sub", [y, b.op("Mul", [zs, b.const(p + "cs", colsum)], p + "corr")], p + "y")
    shape = b.op("Concat", [lead, b.const(p + "n", np.array([w.shape[1]], np.int64))],
                 p + "oshape", axis=0)  # fmt: skip
    b.nodes.append(helper.make_node("Reshape", [y, shape], [out], p + "out"))


def per_token_matmuls(model: onnx.ModelProto, names: set[str], *,
                      symmetric: bool = False) -> tuple[onnx.ModelProto, int]:  # fmt: skip
    """Rewrite the FP32 ``MatMul(x, W const)`` nodes named in ``names`` as per-token INT8.

    Layers reading the same tensor (query/key/value) share one quantization of it. Returns
    the model (changed in place) and the number of rewritten MatMuls.

    Example:
        >>> model, n = per_token_matmuls(onnx.load("fp32.onnx"), {"/fc1/MatMul"})
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    b = _Graph(g)
    consts = {"pt_0": np.array([0], np.int64), "pt_m1": np.array([-1], np.int64),
              "pt_1": np.array([1], np.int64), "pt_zero": np.float32(0), "pt_one": np.float32(1),
              "pt_eps": np.float32(1e-8), "pt_i127": np.float32(1 / 127),
              "pt_i255": np.float32(1 / 255), "pt_128": np.float32(128), "pt_u128": np.uint8(128)}  # fmt: skip
    for name, value in consts.items():
        b.const(name, value)
    quantized: dict[str, tuple[str, str, str]] = {}
    count = 0
    for node in list(g.node):
        if node.op_type != "MatMul" or node.name not in names or node.input[1] not in inits:
            b.nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        x = node.input[0]
        if x not in quantized:
            quantized[x] = _quantize_rows(b, x, w.shape[0], f"pt{len(quantized)}_", symmetric)
        _matmul(b, quantized[x], w, node.output[0], f"pt{len(quantized) - 1}_{count}_", symmetric)
        count += 1
    del g.node[:]
    g.node.extend(b.nodes)
    g.initializer.extend(b.inits)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if not any(o.domain == _MS for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS, 1))
    return model, count


def _chosen(proto: onnx.ModelProto, patterns: tuple[str, ...]) -> list[str]:
    """MatMul nodes with a constant weight whose node or module name matches a pattern."""
    from edgeshrink.quant.ort import module_name

    inits = {t.name for t in proto.graph.initializer}
    out = []
    for pat in patterns:
        rx = re.compile(pat)
        hit = [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in inits
               and (rx.search(n.name) or rx.search(module_name(n.name)))]  # fmt: skip
        if not hit:
            raise UserError(f"layers pattern {pat!r} matches no Linear/MatMul layer; name a "
                            "layer by its module name (e.g. 'encoder.layer.0.output.dense').")
        out += [n for n in hit if n not in out]
    return out


@transform(PerTokenInt8Config)
def _per_token(cfg: PerTokenInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeshrink.quant.int4 import gemm_to_matmul
    from edgeshrink.quant.ort import _fp32_export  # keeps the exporter's scoped names

    with tempfile.TemporaryDirectory() as tmp:
        pre = _fp32_export(model, ctx, Path(tmp))
        plain = Path(tmp) / "matmul.onnx"
        onnx.save(gemm_to_matmul(onnx.load(str(pre))), str(plain))
        chosen = _chosen(onnx.load(str(plain)), cfg.layers)
        dyn = Path(tmp) / "dyn.onnx"
        quantize_dynamic(str(plain), str(dyn), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=chosen)  # fmt: skip
        proto, count = per_token_matmuls(onnx.load(str(dyn)), set(chosen),
                                         symmetric=cfg.symmetric)  # fmt: skip
        path = save_onnx(proto, ctx.artifact_path())
    notes = {"format": "per-token QuantizeLinear + MatMulIntegerToFloat", "layers": count,
             "patterns": list(cfg.layers), "symmetric": cfg.symmetric}  # fmt: skip
    return Artifact(path=path, model=model, precision="int8", notes=notes)
