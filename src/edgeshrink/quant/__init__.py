"""Quantization: ``quantize(model, config, data) -> Artifact``, dispatched on the config.

Example:
    >>> art = quantize(model, StaticInt8Config(calibrator="percentile"), data=task.calibration)
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.quant.advanced import AdvancedPtqConfig
from edgeshrink.quant.equalize import CrossLayerEqualizationConfig
from edgeshrink.quant.int4 import Int4WeightOnlyConfig
from edgeshrink.quant.lowbit import LowBitConfig
from edgeshrink.quant.mixed import MixedConfig
from edgeshrink.quant.nonuniform import KMeansConfig, Po2Config
from edgeshrink.quant.openvino import OpenVinoInt8Config
from edgeshrink.quant.ort import (
    DynamicInt8Config,
    Fp16Config,
    StaticInt8Config,
)
from edgeshrink.quant.outliers import OutlierSplitConfig
from edgeshrink.quant.pertoken import PerTokenInt8Config
from edgeshrink.quant.qat import QatConfig
from edgeshrink.quant.smooth import SmoothQuantConfig
from edgeshrink.task import Task
from edgeshrink.transforms import HANDLERS, Artifact, TransformContext

__all__ = ["quantize", "StaticInt8Config", "DynamicInt8Config", "Fp16Config",
           "Int4WeightOnlyConfig", "QatConfig", "LowBitConfig",
           "KMeansConfig", "Po2Config", "MixedConfig", "AdvancedPtqConfig",
           "SmoothQuantConfig", "OpenVinoInt8Config",
           "PerTokenInt8Config", "OutlierSplitConfig", "CrossLayerEqualizationConfig"]


def quantize(
    model: nn.Module,
    config,
    data: Dataset,
    *,
    input_names: tuple[str, ...] = ("input",),
    workdir: Path | str | None = None,
    name: str = "quantized",
) -> Artifact:
    """Quantize a copy of ``model`` to a deployable artifact, calibrating on ``data`` where
    needed; ``model`` itself is not changed (QAT, folding and equalization work on the copy)."""
    handler = HANDLERS.get(type(config))
    if handler is None or config.stage != "artifact":
        raise UserError(f"{type(config).__name__} is not a quantization config.")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="edgeshrink-"))
    model = copy.deepcopy(model)
    task = Task(name, model, None, data, data, input_names=input_names)
    return handler(config, model, TransformContext(task=task, workdir=workdir, name=name))
