"""INT8 for OpenVINO's CPU runtime: NNCF post-training quantization of our ONNX export.

On x86 with VNNI, OpenVINO's INT8 kernels ran ResNet-18 3.5x faster than ORT FP32, ahead of
ORT's own U8S8 QDQ (shared/FIELD-NOTES.md): where the fastest INT8 needs OpenVINO, it is
offered as an export/runtime target rather than the slower one accepted. Optional: needs
``pip install nncf openvino``.

The artifact's ``path`` is the FP32 ONNX it came from (what ORT-based tools can open);
the shipped files are ``NAME.xml``/``NAME.bin`` (``notes["ir"]``) and ``simulate`` runs
the compiled OpenVINO model, ``notes["runtime"] == "openvino"``.

Example:
    >>> art = apply_recipe([OpenVinoInt8Config()], ctx)  # art.simulate runs OpenVINO
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["OpenVinoInt8Config", "compile_openvino"]


@register_config
@dataclass(frozen=True)
class OpenVinoInt8Config(Config):
    """NNCF INT8 (``nncf.quantize``) on the task's calibration set, run by OpenVINO.

    Attributes:
        preset: NNCF's ``performance`` (symmetric activations) or ``mixed`` (asymmetric).
        calibration_samples: calibration samples NNCF sees.
        threads: inference threads of the compiled model.

    Example:
        >>> cfg = OpenVinoInt8Config(preset="mixed")
    """

    kind = "openvino_int8"
    stage = "artifact"
    family = "quantization"
    preset: str = "performance"
    calibration_samples: int = 300
    threads: int = 2

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, ("performance", "mixed"))
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


@transform(OpenVinoInt8Config)
def _openvino(cfg: OpenVinoInt8Config, model: nn.Module, ctx: TransformContext) -> Artifact:
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise UserError("openvino_int8 needs OpenVINO and NNCF; install them with "
                        "`pip install nncf openvino`.") from None
    from edgeshrink.export import export_onnx

    task = ctx.task
    fp32 = export_onnx(model, task.example_inputs(), ctx.artifact_path(".fp32.onnx"),
                       input_names=task.input_names, dynamic_axes=task.dynamic_axes)  # fmt: skip
    calib = task.calibration.head(cfg.calibration_samples)
    items = [tuple(a[i : i + 1] for a in calib.inputs) for i in range(len(calib))]
    preset = getattr(nncf.QuantizationPreset, cfg.preset.upper())
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), nncf.Dataset(items),
                              preset=preset, subset_size=len(items))  # fmt: skip
    ir = ctx.artifact_path(".xml")
    ov.save_model(quantized, str(ir))
    notes = {"runtime": "openvino", "ir": str(ir), "format": "OpenVINO IR (NNCF INT8)",
             "preset": cfg.preset, "ir_bytes": ir.stat().st_size + ir.with_suffix(".bin").stat().st_size}  # fmt: skip
    return Artifact(path=fp32, model=model, precision="int8", runtime="openvino",
                    simulate=compile_openvino(quantized, cfg.threads), notes=notes)  # fmt: skip
