"""INT8 for OpenVINO's CPU runtime: our calibrated QDQ ONNX (or NNCF's), compiled by OpenVINO.

On x86 with VNNI, OpenVINO's INT8 kernels ran ResNet-18 3.5x faster than ORT FP32, ahead of
ORT's own U8S8 QDQ (shared/FIELD-NOTES.md): where the fastest INT8 needs OpenVINO, it is
offered as an export/runtime target rather than the slower one accepted. Optional: needs
``pip install openvino`` (and ``nncf`` for ``quantizer="nncf"``).

Two quantizers feed it. ``edgeshrink`` (default) is the QDQ file of
:class:`~edgeshrink.quant.ort.StaticInt8Config` (our calibrators, bias correction, float
outputs), which OpenVINO reads as FakeQuantize and runs on its INT8 kernels: on MobileNetV2
it ran at 0.52x ORT FP32 latency against NNCF's 0.72x, agreeing with FP32 on more top-1
(83.5-84.2 % vs 82.5 %) at half NNCF's KL (0.063-0.066 vs 0.120); on ResNet-18 it matched
NNCF's speed (4.35-4.56 vs 4.53-4.58 ms) at a lower KL (benchmarks/RESULTS.md, quant).
``nncf`` runs ``nncf.quantize`` on the FP32 export.

Activations: OpenVINO keeps a tensor in INT8 through MaxPool and the next layer only when
its zero point is 0. Asymmetric uint8 is exactly that after ReLU, but not after PReLU or a
linear bottleneck: O-Net's MaxPools and zero-point subtractions then ran in FP32 (1.23x
ORT FP32). ``activations="mixed"`` quantizes with symmetric int8 where a tensor goes
negative, and only layer inputs, so OpenVINO fuses Conv+PReLU; with each quantizer moved
above the MaxPool or Flatten before it (:func:`hoist_quantizers`), O-Net and a ResNet-18
with trained-like BatchNorm compile to exactly NNCF's kernels, with under half its error.

The artifact's ``path`` is the ONNX it came from (the QDQ file, or the FP32 export for NNCF:
what ORT-based tools can open); the shipped files are ``NAME.xml``/``NAME.bin``
(``notes["ir"]``) and ``simulate`` runs the compiled OpenVINO model,
``notes["runtime"] == "openvino"``. Compiling, running and measuring the IR is the
OpenVINO target's (:mod:`edgeshrink.targets.openvino`); this module only builds it.

Example:
    >>> art = apply_recipe([OpenVinoInt8Config()], ctx)  # art.simulate runs OpenVINO
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import onnx
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.quant.calibrate import CALIBRATORS
from edgeshrink.targets.openvino import compile_openvino, compiled_graph  # re-exported
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["OpenVinoInt8Config", "compile_openvino", "compiled_graph", "hoist_quantizers"]


@register_config
@dataclass(frozen=True)
class OpenVinoInt8Config(Config):
    """INT8 on the task's calibration set, compiled and run by OpenVINO.

    Attributes:
        quantizer: ``edgeshrink`` (our QDQ: ``calibrator``, ``bias_correction``) or
            ``nncf`` (``nncf.quantize`` with ``preset``).
        calibrator: activation-range calibrator of the ``edgeshrink`` quantizer.
        bias_correction: per-channel bias correction of the ``edgeshrink`` quantizer.
        activations: ``mixed`` (default): NNCF's scheme with our ranges, uint8 where never
            negative, symmetric int8 elsewhere, and layer inputs quantized rather than
            outputs (``StaticInt8Config(activations="mixed", inputs_only=True)``); or
            ``uint8`` (asymmetric everywhere). ``mixed`` never ran slower and keeps PReLU
            nets in INT8 (O-Net 0.75x ORT FP32, NNCF's kernels; ``uint8`` 1.35x); on
            MobileNetV2 each was the more accurate in one run (benchmarks/RESULTS.md).
        preset: NNCF's ``performance`` (symmetric activations) or ``mixed`` (asymmetric).
        calibration_samples: calibration samples the quantizer sees.
        threads: inference threads of the compiled model.

    Example:
        >>> cfg = OpenVinoInt8Config(quantizer="nncf", preset="mixed")
    """

    kind = "openvino_int8"
    stage = "artifact"
    family = "quantization"
    quantizer: str = "edgeshrink"
    calibrator: str = "percentile"
    bias_correction: bool = True
    activations: str = "mixed"
    preset: str = "performance"
    calibration_samples: int = 300
    threads: int = 2

    def __post_init__(self) -> None:
        check_choice("quantizer", self.quantizer, ("edgeshrink", "nncf"))
        check_choice("calibrator", self.calibrator, CALIBRATORS)
        check_choice("preset", self.preset, ("performance", "mixed"))
        check_choice("activations", self.activations, ("uint8", "mixed"))
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)
        check_range("threads", self.threads, 1, 256)


def _nncf_model(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext):
    """(source ONNX, OpenVINO model): ``nncf.quantize`` on the FP32 export."""
    try:
        import nncf
    except ImportError:
        raise UserError("openvino_int8 with quantizer=nncf needs NNCF; install it with "
                        "`pip install nncf`.") from None
    import openvino as ov

    from edgeshrink.export import export_onnx

    task = ctx.task
    fp32 = export_onnx(model, task.example_inputs(), ctx.artifact_path(".fp32.onnx"),
                       input_names=task.input_names, dynamic_axes=task.dynamic_axes)  # fmt: skip
    calib = task.calibration.head(cfg.calibration_samples)
    items = [tuple(a[i : i + 1] for a in calib.inputs) for i in range(len(calib))]
    preset = getattr(nncf.QuantizationPreset, cfg.preset.upper())
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), nncf.Dataset(items),
                              preset=preset, subset_size=len(items))  # fmt: skip
    return fp32, quantized


# Ops that only move or select values: a per-tensor quantizer commutes with each of them.
_MOVERS = ("MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")


def hoist_quantizers(model: onnx.ModelProto) -> int:
    """Move each Q -> DQ pair that follows a float MaxPool, Flatten, Reshape, Transpose, ...
    (a chain of them) above the chain, in place; the number moved.

    Exact: rounding to a grid and clipping are monotone, so the max of quantized values is
    the quantized max, and reshapes move values without changing them. ORT quantizes such
    an op's output when its input was not (``inputs_only`` leaves Conv->ReLU outputs float),
    and OpenVINO then ran the pool in FP32 and a stand-alone FakeQuantize after it. Above
    the chain, the FakeQuantize fuses into the convolution that feeds it and the pool runs
    on INT8, as in NNCF's file: ResNet-18 and O-Net then compile to NNCF's kernels
    (benchmarks/RESULTS.md). Only for OpenVINO, which carries the dequantization down
    through these ops; ORT would run the next Conv in FP32.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list] = {}
    for n in g.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    graph_outputs = {o.name for o in g.output}
    per_tensor = {t.name for t in g.initializer if int(np.prod(t.dims)) == 1}

    def single_reader(node) -> bool:
        return len(node.output) == 1 and node.output[0] not in graph_outputs \
            and len(readers.get(node.output[0], [])) == 1

    moved = 0
    for q in [n for n in g.node if n.op_type == "QuantizeLinear"]:
        chain, tensor = [], q.input[0]  # the movers above q, bottom first
        while (p := producer.get(tensor)) is not None and p.op_type in _MOVERS and single_reader(p):
            chain.append(p)
            tensor = p.input[0]
        source = producer.get(tensor)
        dqs = readers.get(q.output[0], [])
        if not chain or len(dqs) != 1 \
                or q.input[1] not in per_tensor \
                or dqs[0].op_type != "DequantizeLinear" or dqs[0].output[0] in graph_outputs \
                or (source is not None and source.op_type == "DequantizeLinear"):
            continue
        dq, top, bottom = dqs[0], chain[-1], chain[0]
        users = readers.get(dq.output[0], [])
        for user in users:  # tensor -> Q -> DQ -> top ... bottom -> (the DQ's readers)
            user.input[list(user.input).index(dq.output[0])] = bottom.output[0]
        q.input[0], top.input[0] = tensor, dq.output[0]
        readers[bottom.output[0]], readers[dq.output[0]] = users, [top]
        moved += 1
    if moved:  # the nodes were edited in place; now restore a topological order
        from edgeshrink.quant.simulate import topological_nodes

        ready = {i.name for i in g.input} | {t.name for t in g.initializer}
        order = [onnx.NodeProto() for _ in g.node]
        for copy, node in zip(order, topological_nodes(g, ready), strict=True):
            copy.CopyFrom(node)  # copies: clearing g.node below detaches the originals
        del g.node[:]
        g.node.extend(order)
    return moved


def _edgeshrink_model(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext):
    """(source ONNX, OpenVINO model): our static QDQ file, read by OpenVINO's ONNX frontend
    (QuantizeLinear/DequantizeLinear become FakeQuantize and run on its INT8 kernels), with
    the quantizers after max-pools and reshapes moved above them (:func:`hoist_quantizers`)."""
    import openvino as ov

    from edgeshrink.quant.ort import StaticInt8Config
    from edgeshrink.transforms import HANDLERS

    static = StaticInt8Config(calibrator=cfg.calibrator, bias_correction=cfg.bias_correction,
                              activations=cfg.activations,
                              inputs_only=cfg.activations == "mixed",
                              calibration_samples=cfg.calibration_samples)  # fmt: skip
    qdq = HANDLERS[StaticInt8Config](static, model, ctx).path
    graph = onnx.load(str(qdq))
    if not hoist_quantizers(graph):
        return qdq, ov.Core().read_model(str(qdq))
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(graph, f"{tmp}/openvino.onnx")
        return qdq, ov.Core().read_model(f"{tmp}/openvino.onnx")


@transform(OpenVinoInt8Config)
def _openvino(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    try:
        import openvino as ov
    except ImportError:
        raise UserError("openvino_int8 needs OpenVINO; install it with "
                        "`pip install openvino`.") from None
    build = _nncf_model if cfg.quantizer == "nncf" else _edgeshrink_model
    source, quantized = build(cfg, model, ctx)
    run = compile_openvino(quantized, cfg.threads)
    check_batches(run, ctx.task.calibration.inputs)  # before anything is written
    ir = ctx.artifact_path(".xml")
    ov.save_model(quantized, str(ir), compress_to_fp16=False)
    label = ("NNCF INT8" if cfg.quantizer == "nncf"
             else f"edgeshrink QDQ INT8, {cfg.activations} activations, {cfg.calibrator}")
    notes = {"runtime": "openvino", "ir": str(ir), "format": f"OpenVINO IR ({label})",
             "quantizer": cfg.quantizer, "ir_bytes": ir.stat().st_size + ir.with_suffix(".bin").stat().st_size}  # fmt: skip
    if cfg.quantizer == "nncf":
        notes["preset"] = cfg.preset
    else:
        notes.update(calibrator=cfg.calibrator, bias_correction=cfg.bias_correction,
                     activations=cfg.activations)
    return Artifact(path=source, model=model, precision="int8", runtime="openvino",
                    simulate=run, notes=notes)  # fmt: skip


def check_batches(run, inputs: tuple[np.ndarray, ...]) -> None:
    """Raise a UserError when ``run`` gives two samples other outputs together than alone.

    OpenVINO's low-precision transformations mis-handle an Add whose quantized inputs
    broadcast over the batch (a transformer's word + position embeddings): MiniLM's INT8
    file gave NaN for every sample after the first of a batch, and correct outputs one at a
    time. A file that does that must not be shipped or scored.
    """
    if len(inputs[0]) < 2:
        return
    pair = tuple(a[:2] for a in inputs)
    try:
        together = np.asarray(run(*pair), dtype=np.float64)
    except RuntimeError:  # a model exported for one sample at a time: nothing to compare
        return
    alone = np.concatenate([np.asarray(run(*(a[i : i + 1] for a in pair))) for i in range(2)])
    scale = float(np.nanmax(np.abs(alone))) if np.isfinite(alone).any() else 1.0
    if together.shape != alone.shape or not np.allclose(together, alone, rtol=1e-3,
                                                        atol=1e-3 * scale):  # fmt: skip
        raise UserError("OpenVINO's INT8 build of this model gives other outputs for a batch "
                        f"of 2 than for each sample alone ({int(np.isnan(together).sum())} NaN), "
                        "an OpenVINO low-precision bug seen on transformer embeddings; use "
                        "--method int8_static or int8_dynamic (ONNX Runtime) instead.")
