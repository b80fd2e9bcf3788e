"""INT8 for OpenVINO's CPU runtime: our calibrated QDQ ONNX (or NNCF's), compiled by OpenVINO.

On x86 with VNNI, OpenVINO's INT8 kernels ran ResNet-18 3.5x faster than ORT FP32, ahead of
ORT's own U8S8 QDQ (shared/FIELD-NOTES.md): where the fastest INT8 needs OpenVINO, it is
offered as an export/runtime target rather than the slower one accepted. Optional: needs
``pip install openvino`` (and ``nncf`` for ``quantizer="nncf"``).

Two quantizers feed it. ``edgeshrink`` (default) is the QDQ file of
:class:`~edgeshrink.quant.ort.StaticInt8Config` (our calibrators, bias correction, float
outputs), which OpenVINO reads as FakeQuantize and runs on its INT8 kernels: on MobileNetV2
it agreed with FP32 on 86.5 % of top-1 (KL 0.056) against NNCF's 84.75 % (KL 0.126), at
0.53x ORT FP32 latency against NNCF's 0.71x, and it matched NNCF's speed on ResNet-18
(benchmarks/RESULTS.md). ``nncf`` runs ``nncf.quantize`` on the FP32 export.

Activations: OpenVINO keeps a tensor in INT8 through MaxPool and the next layer only when
its zero point is 0. Asymmetric uint8 is exactly that after ReLU, but not after PReLU or a
linear bottleneck: O-Net's MaxPools and zero-point subtractions then ran in FP32 (1.23x
ORT FP32). ``activations="mixed"`` (symmetric int8 where a tensor goes negative, and only
layer inputs quantized, so OpenVINO fuses Conv+PReLU) ran it at 0.77-0.80x (NNCF 0.69x);
ResNet-18 then compiles to the same INT8 kernels as NNCF's file.

The artifact's ``path`` is the ONNX it came from (the QDQ file, or the FP32 export for NNCF:
what ORT-based tools can open); the shipped files are ``NAME.xml``/``NAME.bin``
(``notes["ir"]``) and ``simulate`` runs the compiled OpenVINO model,
``notes["runtime"] == "openvino"``.

Example:
    >>> art = apply_recipe([OpenVinoInt8Config()], ctx)  # art.simulate runs OpenVINO
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.quant.calibrate import CALIBRATORS
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["OpenVinoInt8Config", "compile_openvino"]


@register_config
@dataclass(frozen=True)
class OpenVinoInt8Config(Config):
    """INT8 on the task's calibration set, compiled and run by OpenVINO.

    Attributes:
        quantizer: ``edgeshrink`` (our QDQ: ``calibrator``, ``bias_correction``) or
            ``nncf`` (``nncf.quantize`` with ``preset``).
        calibrator: activation-range calibrator of the ``edgeshrink`` quantizer.
        bias_correction: per-channel bias correction of the ``edgeshrink`` quantizer.
        activations: ``uint8`` (asymmetric) or ``mixed``: NNCF's scheme with our ranges,
            uint8 where never negative, symmetric int8 elsewhere, and layer inputs
            quantized rather than outputs (``StaticInt8Config(activations="mixed",
            inputs_only=True)``). ``mixed`` runs more of the graph in INT8 (O-Net 0.77x
            vs 1.27x ORT FP32); ``uint8`` kept more accuracy on MobileNetV2
            (benchmarks/RESULTS.md).
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
    activations: str = "uint8"
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


def compile_openvino(model, threads: int = 2):
    """A callable ``fn(*arrays) -> first output`` over an OpenVINO model, forced to f32
    where not quantized (OpenVINO's default on BF16-capable CPUs is bf16)."""
    import openvino as ov

    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
           "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    compiled = ov.Core().compile_model(model, "CPU", cfg)

    def run(*arrays: np.ndarray) -> np.ndarray:
        return compiled(list(arrays))[0]

    return run


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


def _edgeshrink_model(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext):
    """(source ONNX, OpenVINO model): our static QDQ file, read by OpenVINO's ONNX frontend
    (QuantizeLinear/DequantizeLinear become FakeQuantize and run on its INT8 kernels)."""
    import openvino as ov

    from edgeshrink.quant.ort import StaticInt8Config
    from edgeshrink.transforms import HANDLERS

    static = StaticInt8Config(calibrator=cfg.calibrator, bias_correction=cfg.bias_correction,
                              activations=cfg.activations,
                              inputs_only=cfg.activations == "mixed",
                              calibration_samples=cfg.calibration_samples)  # fmt: skip
    qdq = HANDLERS[StaticInt8Config](static, model, ctx).path
    return qdq, ov.Core().read_model(str(qdq))


@transform(OpenVinoInt8Config)
def _openvino(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    try:
        import openvino as ov
    except ImportError:
        raise UserError("openvino_int8 needs OpenVINO; install it with "
                        "`pip install openvino`.") from None
    build = _nncf_model if cfg.quantizer == "nncf" else _edgeshrink_model
    source, quantized = build(cfg, model, ctx)
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
                    simulate=compile_openvino(quantized, cfg.threads), notes=notes)  # fmt: skip
