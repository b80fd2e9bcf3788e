"""Weight-only INT4, group-wise, run by ONNX Runtime's 4-bit MatMul (``MatMulNBits``).

Each MatMul/Linear weight is cut along its input dimension into groups of ``group_size``
values, each group with its own scale (and zero point if asymmetric); activations stay
float. This pays off where MatMuls dominate (transformers: MiniLM), where weight bytes, not
arithmetic, bound the speed. Convolutions are left in FP32.

Example:
    >>> art = quantize(model, Int4WeightOnlyConfig(group_size=32), data=task.calibration)
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import CompressionWarning, UserError
from edgeshrink.export import export_onnx, save_onnx
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["Int4WeightOnlyConfig", "gemm_to_matmul", "check_groups", "split_by_group"]


@register_config
@dataclass(frozen=True)
class Int4WeightOnlyConfig(Config):
    """Group-wise weight-only quantization of MatMul/Linear layers (``MatMulNBits``).

    Attributes:
        group_size: weights per scale along the input dimension (16-256, a power of two).
            Layers whose input size it does not divide stay in float, named in the
            artifact's ``notes["kept_float"]`` and a warning.
        symmetric: scale only (zero point 8); else a 4-bit zero point per group.
        accuracy_level: ORT's compute type for the 4-bit MatMul: 0 unset, 1 fp32, 2 fp16,
            3 bf16, 4 int8 (fastest on x86 with VNNI, activations quantized per block).
        bits: 4 (or 8); other widths have no kernel here (use the simulated configs).

    Example:
        >>> cfg = Int4WeightOnlyConfig(group_size=64, symmetric=True, accuracy_level=4)
    """

    kind = "int4_weight_only"
    stage = "artifact"
    family = "quantization"
    group_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4
    bits: int = 4

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 1, 16)
        check_choice("bits (deployed weight-only)", self.bits, (4, 8))
        check_choice("group_size", self.group_size, (16, 32, 64, 128, 256))
        check_range("accuracy_level", self.accuracy_level, 0, 4)


def gemm_to_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite ``Gemm(A, W, b, transB=1)`` with constant ``W`` as ``MatMul(A, W.T) + b``, the
    form ORT's weight-only quantizer handles (``torch.onnx.export`` writes Linear as Gemm)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    nodes = []
    for node in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0) or not plain:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        w = w.T if attrs.get("transB", 0) else w
        w_name = node.input[1] + "_kn"
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), w_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "_mm" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [mm_out], node.name + "_mm"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]],
                                          node.name + "_bias"))  # fmt: skip
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return model


def split_by_group(model: onnx.ModelProto, group_size: int) -> tuple[list[str], list[str]]:
    """Names of the MatMuls with a constant weight whose input size ``group_size`` divides
    (quantized), and of those it does not divide (kept in float)."""
    inits = {t.name: t for t in model.graph.initializer}
    fits, kept = [], []
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        k = inits[node.input[1]].dims[0]
        (kept if k % group_size else fits).append(node.name or node.output[0])
    return fits, kept


def check_groups(model: onnx.ModelProto, group_size: int) -> tuple[list[str], list[str]]:
    """:func:`split_by_group`, refusing a model where no layer can be quantized; the layers
    kept in float are named in a :class:`~edgeshrink.errors.CompressionWarning`."""
    fits, kept = split_by_group(model, group_size)
    if not fits and not kept:
        raise UserError("the model has no MatMul/Linear layer with constant weights for INT4.")
    if not fits:
        raise UserError(f"group_size {group_size} divides the input size of no MatMul/Linear "
                        f"layer ({', '.join(kept[:4])}); choose a smaller group size.")
    if kept:
        warnings.warn(f"INT4 group_size {group_size} does not divide the input size of "
                      f"{', '.join(kept)}: kept in float.", CompressionWarning, stacklevel=3)
    return fits, kept


@transform(Int4WeightOnlyConfig)
def _int4(cfg: Int4WeightOnlyConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(
            model, ctx.task.example_inputs(), Path(tmp) / "fp32.onnx",
            input_names=ctx.task.input_names, dynamic_axes=ctx.task.dynamic_axes,
        )
        proto = gemm_to_matmul(onnx.load(str(fp32)))
    fits, kept = check_groups(proto, cfg.group_size)
    quant = MatMulNBitsQuantizer(
        proto, bits=cfg.bits, block_size=cfg.group_size, is_symmetric=cfg.symmetric,
        accuracy_level=cfg.accuracy_level or None, op_types_to_quantize=("MatMul",),
        nodes_to_exclude=kept,
    )
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quant.process()
    finally:
        logger.setLevel(level)
    path = save_onnx(quant.model.model, ctx.artifact_path())
    notes = {"format": "MatMulNBits", "group_size": cfg.group_size, "layers": len(fits),
             "kept_float": kept, "symmetric": cfg.symmetric,
             "accuracy_level": cfg.accuracy_level}  # fmt: skip
    return Artifact(path=path, model=model, precision=f"int{cfg.bits}", notes=notes)

