"""Recipe steps that end in a runtime's own file (``stage = "artifact"``).

The configs live here, light and importable anywhere; each target module registers the
handler that builds its file (``@transform(LiteRTConfig)`` in :mod:`.litert`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeshrink.config import Config, check_choice, check_range, register_config

__all__ = ["LiteRTConfig", "ExecuTorchConfig", "TensorRTQDQConfig"]

CALIBRATORS = ("minmax", "percentile", "entropy", "mse", "histogram")


@register_config
@dataclass(frozen=True)
class LiteRTConfig(Config):
    """A LiteRT ``.tflite`` built from the PyTorch model.

    Attributes:
        precision: ``fp32``, ``fp16`` (weights in fp16), ``int8-dynamic`` (int8 weights,
            float activations) or ``int8`` (full integer: int8 activations, per-channel int8
            weights; what microcontrollers and NPUs run).
        io: ``float`` (the model quantizes its input and dequantizes its output) or ``int8``
            (the caller passes int8 tensors: TFLite Micro's usual contract). Only for ``int8``.
        calibrator: how activation ranges are set for ``int8`` (on the task's calibration data).
        calibration_samples: at most this many calibration samples.
        bias_correction: shift each int8 Conv/Linear's bias by its expected weight
            quantization error on the calibration data (as ``StaticInt8Config``'s; Nagel et
            al. 2019). Only for ``int8``.
        micro: also check every op against TensorFlow Lite Micro's kernels, estimate the
            tensor arena and write a C array header beside the file.
    """

    kind = "litert"
    stage = "artifact"
    family = "quantization"
    precision: str = "int8"
    io: str = "float"
    calibrator: str = "minmax"
    calibration_samples: int = 256
    bias_correction: bool = False
    micro: bool = False

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, ("fp32", "fp16", "int8-dynamic", "int8"))
        check_choice("io", self.io, ("float", "int8"))
        check_choice("calibrator", self.calibrator, CALIBRATORS)
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)


@register_config
@dataclass(frozen=True)
class ExecuTorchConfig(Config):
    """An ExecuTorch ``.pte`` with its graph delegated to XNNPACK.

    Attributes:
        precision: ``fp32`` or ``int8`` (PT2E with the XNNPACK quantizer: int8 activations,
            per-channel symmetric int8 weights).
        calibrator: how activation ranges are set for ``int8``.
        calibration_samples: at most this many calibration samples.
    """

    kind = "executorch"
    stage = "artifact"
    family = "quantization"
    precision: str = "int8"
    calibrator: str = "minmax"
    calibration_samples: int = 256

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, ("fp32", "int8"))
        check_choice("calibrator", self.calibrator, CALIBRATORS)
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)


@register_config
@dataclass(frozen=True)
class TensorRTQDQConfig(Config):
    """The ONNX QDQ file TensorRT builds an INT8 engine from (``trtexec --onnx=F --int8``):
    symmetric int8 activations and per-channel weights, explicit quantization. No engine
    is built or timed here; accuracy comes from running the same QDQ file in ONNX Runtime.
    """

    kind = "tensorrt_qdq"
    stage = "artifact"
    family = "quantization"
    calibrator: str = "percentile"
    calibration_samples: int = 256

    def __post_init__(self) -> None:
        check_choice("calibrator", self.calibrator, CALIBRATORS)
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)
