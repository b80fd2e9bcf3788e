"""Mixed precision: which layers hurt most when quantized, and a plan that spares them.

:func:`layer_sensitivity` quantizes one layer at a time (per-channel min-max, each width of
``levels``) and scores the model on a held-out set; the result is the schema
``RunRecord.sensitivity["bits"]`` holds and the report draws as a heat map:
``{"levels": [8, 6, 4, 2], "layers": {layer: [metric at each level]}}``.
:func:`plan_bits` keeps at ``high`` bits the first and last layers (the usual sensitive
ones, e.g. Zhou et al. 2016 DoReFa, Choi et al. 2018 PACT) and every layer whose drop at
``low`` bits exceeds ``max_layer_drop``; the rest go to ``low``.

Example:
    >>> sens = layer_sensitivity(model, task.calibration, task.metric)
    >>> plan_bits(sens, low=4, high=8)
    {'features.0': 8, 'features.3': 4, ...}
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from edgeshrink.config import Config, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.measure.model_stats import torch_outputs
from edgeshrink.quant.fake import (
    QuantSpec,
    QuantWrap,
    fold_batchnorm,
    quantizable_layers,
    quantize_weight,
    wrap_layers,
)
from edgeshrink.quant.lowbit import (
    WeightFn,
    packed_bytes,
    retrain,
    simulated_artifact,
)
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["MixedConfig", "layer_sensitivity", "plan_bits", "apply_bits"]


@register_config
@dataclass(frozen=True)
class MixedConfig(Config):
    """Per-layer weight widths from measured sensitivity, simulated.

    Attributes:
        low: width of the insensitive layers.
        high: width of the sensitive ones (and of the first and last if ``keep_ends``).
        max_layer_drop: a layer whose metric drops more than this (points) at ``low`` bits,
            alone, stays at ``high``.
        keep_ends: first and last Conv/Linear layers at ``high``.
        levels: widths the sensitivity scan tries (reported as the heat map).
        epochs: straight-through retraining epochs after the plan (0: post-training).
        lr: Adam learning rate of that retraining.
    """

    kind = "mixed"
    stage = "artifact"
    family = "quantization"
    low: int = 4
    high: int = 8
    max_layer_drop: float = 0.5
    keep_ends: bool = True
    levels: tuple[int, ...] = (8, 6, 4, 2)
    epochs: int = 0
    lr: float = 1e-4

    def __post_init__(self) -> None:
        check_range("low", self.low, 1, 16)
        check_range("high", self.high, 1, 16)
        check_range("max_layer_drop", self.max_layer_drop, 0.0, 1e9)
        for b in self.levels:
            check_range("levels", b, 1, 16)
        check_range("epochs", self.epochs, 0, 1000)


def _score(model: nn.Module, data: Dataset, metric) -> float:
    return metric(torch_outputs(model, data, 256), data.targets)


def apply_bits(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose layers in ``bits`` are wrapped at that width (per channel)."""
    model = copy.deepcopy(model)

    def make(name: str, layer: nn.Module) -> QuantWrap | None:
        if name not in bits:
            return None
        spec = QuantSpec(bits[name], True, "channel")
        return QuantWrap(layer, WeightFn(lambda w: quantize_weight(w, spec)), None)

    wrap_layers(model, make)
    return model.eval()


def layer_sensitivity(
    model: nn.Module, data: Dataset, metric, levels: tuple[int, ...] = (8, 6, 4, 2)
) -> dict:
    """Metric with only one layer quantized, for each layer and each width of ``levels``."""
    layers = {}
    for name in quantizable_layers(model):
        layers[name] = [round(_score(apply_bits(model, {name: b}), data, metric), 4)
                        for b in levels]
    return {"levels": list(levels), "layers": layers,
            "reference": round(_score(model.eval(), data, metric), 4)}


def plan_bits(sens: dict, *, low: int = 4, high: int = 8, max_layer_drop: float = 0.5,
              keep_ends: bool = True, higher_is_better: bool = True) -> dict[str, int]:
    """``{layer: bits}``: ``high`` for sensitive layers (and the ends), ``low`` elsewhere."""
    names = list(sens["layers"])
    levels = sens["levels"]
    ref = sens["reference"]
    at = levels.index(low) if low in levels else None
    plan = {}
    for i, name in enumerate(names):
        sensitive = keep_ends and i in (0, len(names) - 1)
        if at is not None:
            value = sens["layers"][name][at]
            drop = ref - value if higher_is_better else value - ref
            sensitive = sensitive or drop > max_layer_drop
        plan[name] = high if sensitive else low
    return plan


@transform(MixedConfig)
def _handle(cfg: MixedConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    task = ctx.task
    model = fold_batchnorm(model.eval())  # what deployment quantizes
    levels = tuple(cfg.levels) if cfg.low in cfg.levels else (*cfg.levels, cfg.low)
    sens = layer_sensitivity(model, task.calibration, task.metric, levels)
    plan = plan_bits(sens, low=cfg.low, high=cfg.high, max_layer_drop=cfg.max_layer_drop,
                     keep_ends=cfg.keep_ends, higher_is_better=task.metric.higher_is_better)
    wrapped = retrain(apply_bits(model, plan), ctx, epochs=cfg.epochs, lr=cfg.lr)
    layers = quantizable_layers(model)
    size = packed_bytes(model, {n: (b, layers[n].weight.shape[0]) for n, b in plan.items()})
    return simulated_artifact(wrapped, ctx, precision=f"mixed{cfg.high}/{cfg.low}",
                              size_encoded_bytes=size,
                              notes={"layer_bits": plan, "sensitivity": {"bits": sens}})
