"""Deployed precisions through ONNX Runtime: INT8 static (QDQ), INT8 dynamic, FP16.

Format choices are measured, not assumed (see shared/FIELD-NOTES.md): on x86 with VNNI,
ORT's QDQ graph with *uint8* activations and int8 per-channel weights (U8S8) runs 2-3x
faster than FP32, while its default int8 activations (S8S8) run no faster.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, check_regex, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import OPSET, export_onnx, save_onnx
from edgeshrink.quant.calibrate import CALIBRATORS, calibrate_range, collect_stats
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["StaticInt8Config", "DynamicInt8Config", "Fp16Config", "static_int8_file",
           "matmul_dominated", "module_name", "excluded_nodes",
           "int8_format_for"]


REDUCE_RANGE = ("auto", "on", "off")


def int8_format_for(cfg, cpu_flags: tuple[str, ...] | None = None, *,
                    device: str | None = None) -> dict:
    """The INT8 weight format of ``cfg`` (``reduce_range`` auto/on/off) for a CPU with
    ``cpu_flags`` (default: this machine's), for ``notes["int8_format"]``: the flags, the
    sentence that decided it, ``decided_by`` (the recipe, ``device DEVICE``'s profile, or
    this host) and, where the file's accuracy on this machine is not the device's
    (:func:`~edgeshrink.targets.onnxruntime.host_caveat`), ``"accuracy_caveat"``."""
    from edgeshrink.targets.onnxruntime import host_caveat, int8_format

    fmt = int8_format(cpu_flags)
    if cfg.reduce_range != "auto":
        fmt = {**fmt, "reduce_range": cfg.reduce_range == "on",
               "reason": f"reduce_range={cfg.reduce_range} set in the recipe."}
        decided = "recipe"
    elif cpu_flags is not None:
        decided = f"device {device}" if device else "the cpu_flags given"
    else:
        decided = "this host" + (f" (the profile of {device} lists no cpu_flags)"
                                 if device else "")
    fmt = {**fmt, "chosen_by": "cpu flags" if cfg.reduce_range == "auto" else "recipe",
           "decided_by": decided}
    caveat = host_caveat(fmt["reduce_range"], cpu_flags, device)
    return {**fmt, "accuracy_caveat": caveat} if caveat else fmt


@register_config
@dataclass(frozen=True)
class StaticInt8Config(Config):
    """INT8 post-training static quantization, calibrated on the task's calibration set.

    Activation ranges come from our own calibrators (:mod:`edgeshrink.quant.calibrate`) and
    are handed to ONNX Runtime's QDQ quantizer as a calibration table.

    Attributes:
        calibrator: ``minmax``, ``mean_minmax`` (mean of per-sample extremes, NNCF's
            default), ``percentile``, ``entropy`` (KL, TensorRT-style) or ``mse``.
        percentile: the percentile the ``percentile`` calibrator keeps.
        per_channel: per-output-channel weight scales (else per-tensor).
        activations: ``uint8`` (the fast U8S8 path on x86), ``int8`` (S8S8), or ``mixed``:
            uint8 where the calibrated range is never negative (zero point 0), symmetric
            int8 where it is. ``mixed`` is the scheme OpenVINO runs entirely in INT8 (NNCF's
            ``performance`` preset): O-Net's asymmetric uint8 PReLU outputs left its
            MaxPools and their zero-point subtraction in FP32 (0.65 vs 0.44 ms). ONNX
            Runtime runs it slowly (its int8-activation kernels are no faster than FP32).
        symmetric_activations: zero point in the middle of the grid (else asymmetric).
        calibration_samples: how many calibration samples to use at most.
        exclude: regexes (``re.search``) on ONNX node names or PyTorch module names
            (``features.0.0``, ``classifier.1``) of layers kept in FP32: the
            mixed-precision answer for the few most sensitive layers.
        ops: ONNX op types to quantize (empty: ONNX Runtime's default set). ``("MatMul",
            "Gemm")`` leaves residual Adds and LayerNorms in FP32 (transformers).
        bias_correction: after quantizing, shift each Conv/Gemm's int32 bias by the
            per-channel mean output error against FP32 on calibration data
            (:mod:`edgeshrink.quant.biascorr`; Nagel et al. 2019).
        inputs_only: quantize what layers read, not what Conv/Gemm/MatMul write: an
            output stays float unless the next layer quantizes it (NNCF's placement).
            OpenVINO then fuses O-Net's Conv+PReLU (mean |dP(face)| 0.0011 vs 0.0018);
            ONNX Runtime cannot fuse those convs and runs 2.7x slower.
        reduce_range: 7-bit weights (ORT's remedy for U8S8 saturation): ``auto`` chooses
            from this CPU's flags (:func:`edgeshrink.targets.onnxruntime.int8_format`: on
            where x86 lacks VNNI), ``on`` or ``off`` pin it. Recorded in
            ``notes["int8_format"]``.

    Example:
        >>> cfg = StaticInt8Config(calibrator="entropy", exclude=("^features\\.0\\.",))
    """

    kind = "int8_static"
    stage = "artifact"
    family = "quantization"
    calibrator: str = "minmax"
    percentile: float = 99.99
    per_channel: bool = True
    activations: str = "uint8"
    symmetric_activations: bool = False
    calibration_samples: int = 256
    exclude: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    bias_correction: bool = False
    inputs_only: bool = False
    reduce_range: str = "auto"

    def __post_init__(self) -> None:
        check_regex("exclude", *self.exclude)
        check_choice("reduce_range", self.reduce_range, REDUCE_RANGE)
        check_choice("calibrator", self.calibrator, CALIBRATORS)
        check_range("percentile", self.percentile, 90.0, 100.0)
        check_choice("activations", self.activations, ("uint8", "int8", "mixed"))
        if self.activations == "mixed" and self.symmetric_activations:
            raise UserError("activations=mixed already makes the signed tensors symmetric; "
                            "symmetric_activations would centre the uint8 ones at 128.")
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)


@register_config
@dataclass(frozen=True)
class DynamicInt8Config(Config):
    """INT8 weights, activations quantized on the fly per batch (no calibration).

    Attributes:
        per_channel: per-output-channel weight scales.
        ops: ONNX op types to quantize (MatMul/Gemm by default; Conv dynamic
            quantization becomes ConvInteger, which ORT runs slowly).
        exclude: regexes on node or module names of layers kept in FP32 (as in
            :class:`StaticInt8Config`).
        reduce_range: 7-bit weights where U8S8 saturates (``auto``/``on``/``off``, as in
            :class:`StaticInt8Config`).

    Example:
        >>> cfg = DynamicInt8Config(exclude=("attention.output.dense",))
    """

    kind = "int8_dynamic"
    stage = "artifact"
    family = "quantization"
    per_channel: bool = True
    ops: tuple[str, ...] = ("MatMul", "Gemm")
    exclude: tuple[str, ...] = ()
    reduce_range: str = "auto"

    def __post_init__(self) -> None:
        check_regex("exclude", *self.exclude)
        check_choice("reduce_range", self.reduce_range, REDUCE_RANGE)


@register_config
@dataclass(frozen=True)
class Fp16Config(Config):
    """FP16 weights and compute; inputs and outputs stay FP32 for the caller."""

    kind = "fp16"
    stage = "artifact"
    family = "quantization"


def _fp32_export(model: nn.Module, ctx: TransformContext, workdir: Path) -> Path:
    """FP32 ONNX with the exporter's scoped node names kept (``/features/features.0/Conv``),
    so that ``exclude`` can name layers; the shipped file is compacted after quantizing."""
    import torch

    from edgeshrink.export import _verify

    if hasattr(model, "write_onnx"):  # a user's ONNX model: quantize the graph as it is
        return _pre_process(model.write_onnx(workdir / "fp32.onnx"), workdir)
    model = copy.deepcopy(model).eval()
    names = tuple(ctx.task.input_names)
    axes = {name: {0: "batch"} for name in names}
    for name, extra in (ctx.task.dynamic_axes or {}).items():
        axes.setdefault(name, {}).update(extra)
    axes["output"] = {0: "batch"}
    path = workdir / "fp32.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, ctx.task.example_inputs(), str(path), input_names=list(names),
                          output_names=["output"], dynamic_axes=axes, opset_version=OPSET,
                          dynamo=False)  # fmt: skip
    _verify(model, ctx.task.example_inputs(), path, 1e-4)
    return _pre_process(path, workdir)


def _pre_process(path: Path, workdir: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = workdir / "pre.onnx"
    quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
    return pre


def module_name(node_name: str) -> str:
    """The PyTorch module a TorchScript-exported node came from.

    ``/features/features.1/conv/conv.0/conv.0.0/Conv`` -> ``features.1.conv.0.0``: each
    scope is a child's name, and a Sequential's child repeats its parent (``conv.0``).

    Example:
        >>> module_name("/classifier/classifier.1/Gemm")
        'classifier.1'
    """
    parts = [p for p in node_name.split("/") if p][:-1]
    name, prev = "", ""
    for part in parts:
        if prev and part.startswith(prev + "."):
            name = name[: len(name) - len(prev)] + part
        else:
            name = f"{name}.{part}" if name else part
        prev = part
    return name or node_name


def excluded_nodes(path: Path, patterns: tuple[str, ...]) -> list[str]:
    """Names of the nodes in ``path`` whose node name or module name matches a pattern
    (``re.search``); a pattern that matches nothing is a user error."""
    if not patterns:
        return []
    nodes = [n.name for n in onnx.load(str(path)).graph.node]
    out = []
    for pat in patterns:
        rx = re.compile(pat)
        hit = [n for n in nodes if rx.search(n) or rx.search(module_name(n))]
        if not hit:
            mods = sorted({module_name(n) for n in nodes})[:8]
            raise UserError(f"exclude pattern {pat!r} matches no layer; layers look like "
                            f"{', '.join(mods)}.")  # fmt: skip
        out += [n for n in hit if n not in out]
    return out


def check_calibration(data: Dataset, ctx: TransformContext) -> None:
    """Calibration arrays must match the model's inputs in count and per-sample shape."""
    expected = [a.shape[1:] for a in ctx.task.eval.inputs]
    got = [a.shape[1:] for a in data.inputs]
    if len(data) == 0 or [tuple(s) for s in expected] != [tuple(s) for s in got]:
        raise UserError(
            f"calibration data has samples of shape {got}, the model takes {expected}."
        )


def activation_ranges(pre: Path, data: Dataset, cfg: StaticInt8Config) -> dict:
    """``{tensor name: (lo, hi)}`` chosen by ``cfg.calibrator`` on ``data``."""
    batches = list(data.head(cfg.calibration_samples).numpy_batches(32))
    stats = collect_stats(pre, batches)
    # (graph outputs get a range too, but float_outputs drops their Q/DQ pair afterwards)
    return {
        name: calibrate_range(s, cfg.calibrator, percentile=cfg.percentile)
        for name, s in stats.items()
    }


def _write_table(ranges: dict, path: Path) -> Path:
    """Ranges as ORT's calibration cache (a JSON TensorsData), read by ``quantize_static``."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )  # fmt: skip

    data = {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi))
        for name, (lo, hi) in ranges.items()
    }
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), path)
    return path


# A calibrated range reaching this far is a mask (``scores + finfo(float32).min``), not a signal.
MASK_RANGE = 1e30


def mask_nodes(pre: Path, ranges: dict) -> list[str]:
    """Names of the nodes that write or read a mask-valued tensor (range beyond MASK_RANGE).

    Quantized, such a tensor gets a scale of ~1e36, and the attention scores a mask is
    added to collapse before the Softmax. Left in float, MiniLM's all-ops static INT8 went
    from cosine 0.298 to 0.774 against FP32.
    """
    masks = {t for t, (lo, hi) in ranges.items() if max(abs(lo), abs(hi)) >= MASK_RANGE}
    if not masks:
        return []
    return [n.name for n in onnx.load(str(pre)).graph.node
            if masks & (set(n.input) | set(n.output))]  # fmt: skip


def qdq_quantize(pre: Path, out: Path, ranges: dict, cfg: StaticInt8Config, *,
                 reduce_range: bool = False, extra_options: dict | None = None) -> Path:
    """ORT's QDQ quantizer with our activation ranges; int8 weights, per-channel or not
    (7-bit with ``reduce_range``). ``extra_options`` go to ``quantize_static`` on top of
    those ``cfg`` implies."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    table = _write_table(ranges, out.with_suffix(".calib.json"))
    extra = {"ActivationSymmetric": cfg.symmetric_activations}
    if cfg.inputs_only:
        extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "Gemm", "MatMul"]
    if cfg.activations == "mixed":  # signed tensors: symmetric int8, the rest uint8
        signed = {"quant_type": QuantType.QInt8, "symmetric": True}
        extra["TensorQuantOverrides"] = {t: [dict(signed)] for t, (lo, _) in ranges.items()
                                         if lo < 0}  # fmt: skip
    extra.update(extra_options or {})
    with contextlib.redirect_stdout(io.StringIO()):  # ORT prints calibration chatter
        quantize_static(
            str(pre), str(out), None,
            quant_format=QuantFormat.QDQ,
            per_channel=cfg.per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QInt8 if cfg.activations == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=str(table),
            nodes_to_exclude=excluded_nodes(pre, cfg.exclude) + mask_nodes(pre, ranges),
            op_types_to_quantize=list(cfg.ops) or None,
            extra_options=extra,
        )
    return out


def float_outputs(path: Path) -> Path:
    """Drop the QuantizeLinear/DequantizeLinear pair ORT puts on each graph output, in place.

    A quantized output is rounded to 256 levels over its calibrated range, and clipped where
    a calibrator narrowed that range: on MobileNetV2 the percentile range clipped the top
    logits and cost 6 points of top-1 agreement. NNCF leaves outputs in float too.
    """
    model = onnx.load(str(path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    drop = []
    for out in g.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        users = [n for n in g.node if q.output[0] in n.input]
        if len(users) != 1:  # the quantized value also feeds another node: keep it
            continue
        src = producer.get(q.input[0])
        if src is None:
            continue
        src.output[list(src.output).index(q.input[0])] = out.name
        for n in g.node:  # other readers of the float value now read it under its new name
            for i, name in enumerate(n.input):
                if name == q.input[0] and n is not q:
                    n.input[i] = out.name
        drop += [q, dq]
    for n in drop:
        g.node.remove(n)
    if drop:
        used = {i for n in g.node for i in n.input}
        for init in [t for t in g.initializer if t.name not in used]:
            g.initializer.remove(init)  # the dropped pair's scale and zero point
        onnx.save(model, str(path))
    return path


def static_int8_file(cfg: StaticInt8Config, model: nn.Module, ctx: TransformContext, *,
                     extra_options: dict | None = None, fmt: dict | None = None) -> Path:
    """The QDQ file of ``cfg`` at ``ctx.artifact_path()``: FP32 export, calibration on the
    task's calibration set, ORT's quantizer (with ``extra_options``), float outputs; ``fmt``
    is :func:`int8_format_for`'s answer where the caller already has it."""
    check_calibration(ctx.task.calibration, ctx)
    fmt = fmt or int8_format_for(cfg, ctx.cpu_flags, device=ctx.device)
    with tempfile.TemporaryDirectory() as tmp:
        pre = _fp32_export(model, ctx, Path(tmp))
        ranges = activation_ranges(pre, ctx.task.calibration, cfg)
        out = float_outputs(qdq_quantize(pre, Path(tmp) / "int8.onnx", ranges, cfg,
                                         reduce_range=fmt["reduce_range"],
                                         extra_options=extra_options))
        if cfg.bias_correction:
            from edgeshrink.quant.biascorr import correct_biases

            data = ctx.task.calibration.head(min(cfg.calibration_samples, 128))
            correct_biases(pre, out, list(data.numpy_batches(32)))
        return save_onnx(onnx.load(str(out)), ctx.artifact_path())


def _format_notes(fmt: dict) -> dict:
    """``int8_format``, and its caveat as the top-level ``accuracy_caveat`` the report and
    the advisor show."""
    caveat = fmt.get("accuracy_caveat")
    return {"int8_format": fmt, **({"accuracy_caveat": caveat} if caveat else {})}


@transform(StaticInt8Config)
def _static(cfg: StaticInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    fmt = int8_format_for(cfg, ctx.cpu_flags, device=ctx.device)
    path = static_int8_file(cfg, model, ctx, fmt=fmt)
    notes = {
        "format": "QDQ", "activations": cfg.activations, "calibrator": cfg.calibrator,
        "per_channel": cfg.per_channel, "symmetric_activations": cfg.symmetric_activations,
        "excluded": list(cfg.exclude), "bias_correction": cfg.bias_correction,
        "inputs_only": cfg.inputs_only, **_format_notes(fmt),
    }  # fmt: skip
    return Artifact(path=path, model=model, precision="int8", notes=notes)


@transform(DynamicInt8Config)
def _dynamic(cfg: DynamicInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        pre = _fp32_export(model, ctx, Path(tmp))
        out = Path(tmp) / "dyn.onnx"
        fmt = int8_format_for(cfg, ctx.cpu_flags, device=ctx.device)
        quantize_dynamic(
            str(pre), str(out), per_channel=cfg.per_channel, weight_type=QuantType.QInt8,
            reduce_range=fmt["reduce_range"],
            op_types_to_quantize=list(cfg.ops),
            # dynamic mode first rewrites Gemm as MatMul(+Add) named NODE_MatMul
            nodes_to_exclude=[f"{n}{s}" for n in excluded_nodes(pre, cfg.exclude)
                              for s in ("", "_MatMul")],
        )
        path = save_onnx(onnx.load(str(out)), ctx.artifact_path())
    notes = {"ops": list(cfg.ops), "excluded": list(cfg.exclude), **_format_notes(fmt)}
    return Artifact(path=path, model=model, precision="int8", notes=notes)


@transform(Fp16Config)
def _fp16(_cfg: Fp16Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(
            model, ctx.task.example_inputs(), Path(tmp) / "fp32.onnx",
            input_names=ctx.task.input_names, dynamic_axes=ctx.task.dynamic_axes,
        )
        half = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    path = save_onnx(half, ctx.artifact_path())
    return Artifact(path=path, model=model, precision="fp16", notes={"io": "fp32"})


def matmul_dominated(model: nn.Module, group_size: int = 32) -> bool:
    """Whether Linear layers hold most weights and all take inputs divisible by the group."""
    if hasattr(model, "matmul_dominated"):  # a user's ONNX model: read from its graph
        return model.matmul_dominated(group_size)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    total = sum(p.numel() for p in model.parameters())
    in_linear = sum(m.weight.numel() for m in linears)
    return bool(linears) and in_linear > total / 2 and all(
        m.in_features % group_size == 0 for m in linears
    )
