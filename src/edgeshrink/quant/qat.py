"""Quantization-aware training: fine-tune through fake-quant, export what was trained.

Steps of one config (``prepare`` then ``convert``, as the style guide asks):

1. ``prepare``: fold BatchNorm into the preceding conv (``torch.fx`` fusion, so the trained
   weights are the ones that ship), wrap every Conv/Linear: weights on a symmetric signed
   grid with a learned step per output channel, inputs on an asymmetric unsigned grid
   (uint8 at 8 bits) with a learned step and an integer zero point set by min-max on the
   calibration data (LSQ, Esser et al. 2020);
2. fine-tune on the task's training data (distillation from the original model optional);
3. ``convert``: at 8/8 bits, a QDQ ONNX whose scales and zero points *are* the learned ones
   (int8 weights + DequantizeLinear, uint8 QuantizeLinear/DequantizeLinear on each layer's
   input, repeated after the Relu/MaxPool/reshapes before it so that ONNX Runtime fuses
   QLinearConv/QGemm), checked against the fake-quant torch model; below 8 bits a
   ``simulated`` artifact.

Example:
    >>> art = apply_recipe([QatConfig(bits=8, epochs=1)], ctx)
"""

from __future__ import annotations

import copy
import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeshrink.config import Config, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.quant.fake import (
    LsqQuantizer,
    QuantWrap,
    fold_batchnorm,
    layer_filter,
    unwrap,
    wrap_layers,
)
from edgeshrink.quant.lowbit import packed_bytes, retrain, simulated_artifact
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["QatConfig", "prepare_qat", "export_qdq", "QdqMismatch"]


@register_config
@dataclass(frozen=True)
class QatConfig(Config):
    """Quantization-aware fine-tuning.

    Attributes:
        bits: weight bits (1-16); 8 exports a QDQ ONNX that ONNX Runtime runs.
        act_bits: activation bits (0: activations stay FP32; 8 with ``bits=8`` for QDQ).
        epochs: fine-tuning epochs on the task's training data.
        lr: Adam learning rate (weights and steps).
        per_channel: one weight step per output channel (else one per layer).
        distill: weight of distillation from the original model (see FinetuneConfig);
            0.5 recovered all of ResNet-20's 4-bit PTQ loss where labels alone did not.
        calibration_batches: batches of calibration data that set the activation ranges.
    """

    kind = "qat"
    stage = "artifact"
    family = "quantization"
    bits: int = 8
    act_bits: int = 8
    epochs: int = 2
    lr: float = 1e-4
    per_channel: bool = True
    distill: float = 0.5
    calibration_batches: int = 4

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 1, 16)
        if self.act_bits:
            check_range("act_bits", self.act_bits, 2, 16)
        check_range("epochs", self.epochs, 0, 1000)
        check_range("lr", self.lr, 0.0, 10.0)
        check_range("distill", self.distill, 0.0, 1.0)
        check_range("calibration_batches", self.calibration_batches, 1, 1_000_000)


class QdqMismatch(RuntimeError):
    """The QDQ file does not compute what the fake-quant model computes."""


def prepare_qat(model: nn.Module, cfg: QatConfig, calibration: Dataset | None) -> nn.Module:
    """A copy of ``model`` with LSQ quantizers on every Conv/Linear, ranges observed."""
    model = fold_batchnorm(copy.deepcopy(model).eval())

    def make(_name: str, layer: nn.Module) -> QuantWrap:
        wq = LsqQuantizer(cfg.bits, weight=layer.weight, per_channel=cfg.per_channel)
        return QuantWrap(layer, wq, LsqQuantizer(cfg.act_bits) if cfg.act_bits else None)

    wrapped = wrap_layers(model, make, layer_filter())
    if cfg.act_bits and calibration is not None:
        with torch.no_grad():
            for i, (xs, _) in enumerate(calibration.batches(64)):
                if i == cfg.calibration_batches:
                    break
                model(*xs)
    for w in wrapped.values():
        if w.act_q is not None:
            w.act_q.observing.fill_(False)
    return model


# ---- QDQ export ----------------------------------------------------------------------------
def _qparams(wrap: QuantWrap) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(int8 weights, weight scales, activation scale, activation zero point) of a layer."""
    wq = wrap.weight_q
    step = (wq.step.detach().abs() + 1e-12).float()
    w = wrap.layer.weight.detach()
    q = torch.clamp(torch.round(w * (1.0 / step)), wq.qmin, wq.qmax)
    aq = wrap.act_q
    a_step = float((aq.step.detach().abs() + 1e-12).float())
    return (q.numpy().astype(np.int8), step.flatten().numpy(), a_step,
            int(aq.zero_point))


def _int32_bias(graph, bias, scale: np.ndarray):
    """``bias`` as int32 on the accumulator's grid (input step x weight step) and the
    DequantizeLinear that reads it: ORT fuses a layer with a float output (the last one)
    into QGemm only when every input, the bias too, comes from a DequantizeLinear (a layer
    followed by a Q fuses with a float bias, and one that stays float would only pay for
    one more DequantizeLinear per run). The rounding moves each output by at most half an
    accumulator step."""
    from onnx import helper, numpy_helper

    b = numpy_helper.to_array(bias).astype(np.float64)
    scale = np.broadcast_to(scale, b.shape).astype(np.float32)
    info = np.iinfo(np.int32)
    q = np.clip(np.round(b / scale), info.min, info.max).astype(np.int32)
    name = bias.name
    bias.CopyFrom(numpy_helper.from_array(q, name + "_q"))
    graph.initializer.extend([numpy_helper.from_array(scale, name + "_s"),
                              numpy_helper.from_array(np.zeros_like(q), name + "_z")])
    return helper.make_node("DequantizeLinear", [name + "_q", name + "_s", name + "_z"],
                            [name + "_dq"], axis=0)


def _insert_qdq(graph, layers: dict[str, QuantWrap]) -> set[str]:
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}  # float-output layers: int32 bias (_int32_bias)
    nodes, done = [], set()
    for node in graph.node:
        layer = node.input[1].removesuffix(".weight") if len(node.input) > 1 else ""
        if node.op_type in ("Conv", "Gemm", "MatMul") and layer in layers and layer not in done:
            q, scale, a_scale, a_zp = _qparams(layers[layer])
            wname = node.input[1]
            inits[wname].CopyFrom(numpy_helper.from_array(q, wname + "_q"))
            graph.initializer.extend([
                numpy_helper.from_array(scale.reshape(-1) if scale.size > 1 else scale.reshape(()),
                                        wname + "_s"),
                numpy_helper.from_array(np.zeros(scale.shape if scale.size > 1 else (), np.int8),
                                        wname + "_z"),
                numpy_helper.from_array(np.array(a_scale, np.float32), layer + ".in_s"),
                numpy_helper.from_array(np.array(a_zp, np.uint8), layer + ".in_z"),
            ])
            x = node.input[0]
            nodes += [
                helper.make_node("DequantizeLinear", [wname + "_q", wname + "_s", wname + "_z"],
                                 [wname + "_dq"], axis=0),
                helper.make_node("QuantizeLinear", [x, layer + ".in_s", layer + ".in_z"],
                                 [layer + ".in_q"]),
                helper.make_node("DequantizeLinear", [layer + ".in_q", layer + ".in_s",
                                                      layer + ".in_z"], [layer + ".in_dq"]),
            ]
            node.input[0], node.input[1] = layer + ".in_dq", wname + "_dq"
            if node.output[0] in outputs and len(node.input) > 2 and node.input[2] in inits:
                nodes.append(_int32_bias(graph, inits[node.input[2]], scale * a_scale))
                node.input[2] += "_dq"
            done.add(layer)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return done


# ops that commute with a uniform quantizer (monotone or data movement): a tensor on the
# grid stays on it, so a Q/DQ pair before them equals the one after
_MOVES_GRID = frozenset({"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                         "Identity"})
_ACTIVATIONS = frozenset({"Relu", "Clip"})


def _quantize_outputs(proto):
    """Each quantized layer's output quantized with the next layer's learned scale.

    ORT fuses DQ(x), DQ(w) -> Conv -> Q(y) into QLinearConv (and Relu -> Q into the Q when
    the zero point is the grid's minimum); with only the consumer's input Q after
    ``Relu -> MaxPool -> Reshape`` the layer ran in float on dequantized values. Where a
    layer L reaches a quantized consumer M through a single-consumer chain of Relu/Clip then
    grid-preserving ops, this puts M's Q/DQ after the last activation and after every op up
    to M's own Q: the same numbers (idempotent on on-grid values), which ORT now runs in
    uint8. Returns the new proto and the number of Q/DQ pairs added.
    """
    import onnx_ir as ir

    model = ir.from_proto(proto)
    graph, added = model.graph, 0
    for q in list(graph):
        if q.op_type != "QuantizeLinear" or q.inputs[1].const_value is None:
            continue
        chain, v = [], q.inputs[0]  # walk back from M's input to a quantized layer
        while ((p := v.producer()) is not None and len(v.uses()) == 1
               and p.op_type in _MOVES_GRID | _ACTIVATIONS):
            chain.append(p)
            v = p.inputs[0]
        layer = v.producer()
        src = layer.inputs[0].producer() if layer is not None and layer.inputs else None
        if (layer is None or layer.op_type not in ("Conv", "Gemm", "MatMul") or len(v.uses()) != 1
                or src is None or src.op_type != "DequantizeLinear"):
            continue
        chain.reverse()  # L's side first; the last op's output already meets M's Q
        acts = [i for i, n in enumerate(chain) if n.op_type in _ACTIVATIONS]
        after = chain[acts[-1]:-1] if acts else [layer, *chain][:-1]
        for node in after:
            out = node.outputs[0]
            uses = list(out.uses())
            qn = ir.node("QuantizeLinear", [out, q.inputs[1], q.inputs[2]])
            dq = ir.node("DequantizeLinear", [qn.outputs[0], q.inputs[1], q.inputs[2]])
            qn.outputs[0].name, dq.outputs[0].name = f"{out.name}.rq", f"{out.name}.rdq"
            for use in uses:
                use.node.replace_input_with(use.idx, dq.outputs[0])
            graph.insert_after(node, [qn, dq])
            added += 1
    return ir.to_proto(model), added


def export_qdq(model: nn.Module, ctx: TransformContext, *, check_agreement: float = 0.99):
    """Write the 8/8-bit QAT model as QDQ ONNX with its learned scales; verify on eval data.

    Raises :class:`QdqMismatch` if a layer is missing from the graph or if fewer than
    ``check_agreement`` of the evaluation samples get the same class as the torch model.
    """
    import onnx

    from edgeshrink.export import OPSET, save_onnx

    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantWrap)}
    plain = unwrap(copy.deepcopy(model)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(plain, ctx.task.example_inputs(), buf,
                          input_names=list(ctx.task.input_names), output_names=["output"],
                          dynamic_axes={n: {0: "batch"} for n in (*ctx.task.input_names,
                                                                   "output")},
                          opset_version=OPSET, dynamo=False, do_constant_folding=False)
    proto = onnx.load_from_string(buf.getvalue())
    missing = sorted(set(layers) - _insert_qdq(proto.graph, layers))
    if missing:
        raise QdqMismatch(f"layers not found in the exported graph: {', '.join(missing)}")
    proto, _ = _quantize_outputs(proto)
    path = save_onnx(proto, ctx.artifact_path())
    agree = _agreement(model, path, ctx.task.eval)
    if agree < check_agreement:
        raise QdqMismatch(f"{path.name}: ONNX Runtime agrees with the QAT model on only "
                          f"{100 * agree:.1f} % of samples")
    return path, agree


def _agreement(model: nn.Module, path, data: Dataset) -> float:
    """Fraction of samples where ONNX Runtime and the torch model give the same class
    (regression outputs: fraction within 1e-2 relative of the torch output)."""
    from edgeshrink.targets.onnxruntime import onnx_outputs

    got = onnx_outputs(path, data)
    with torch.no_grad():
        ref = np.concatenate([model.eval()(*xs).numpy() for xs, _ in data.batches(128)])
    if ref.ndim == 2 and ref.shape[1] > 1:
        return float(np.mean(got.argmax(1) == ref.argmax(1)))
    return float(np.mean(np.abs(got - ref) <= 1e-2 * (np.abs(ref) + 1e-3)))


@transform(QatConfig)
def _handle(cfg: QatConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    qmodel = prepare_qat(model, cfg, ctx.task.calibration)
    qmodel = retrain(qmodel, ctx, epochs=cfg.epochs, lr=cfg.lr, distill=cfg.distill)
    notes = {"method": "QAT (LSQ steps, STE)", "act_bits": cfg.act_bits, "epochs": cfg.epochs}
    if cfg.bits == 8 and cfg.act_bits == 8:
        path, agree = export_qdq(qmodel, ctx)
        notes.update(format="QDQ, uint8 activations / int8 weights, learned scales",
                     qdq_top1_agreement_with_qat_model=round(100 * agree, 3))
        return Artifact(path=path, model=qmodel, precision="int8", notes=notes)
    bits = {n: (cfg.bits, m.weight_q.step.numel())
            for n, m in qmodel.named_modules() if isinstance(m, QuantWrap)}
    size = packed_bytes(unwrap(copy.deepcopy(qmodel)), bits)
    return simulated_artifact(qmodel, ctx, precision=f"int{cfg.bits}", size_encoded_bytes=size,
                              notes=notes)
