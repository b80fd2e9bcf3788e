"""Outlier-channel split: the few input channels of a Linear that dwarf the rest stay FP32.

Dettmers et al. 2022 (LLM.int8()): in transformers a handful of feature dimensions carry
activations 5-20x larger than the others; quantizing the whole input on one scale spends
the 256 levels on them. Here the split is fixed from calibration data: for a Linear whose
input channel ``j`` has ``max|X_j|`` above ``ratio`` times the median channel maximum (at
most ``max_channels`` of them),

    y = (X * m) W^T + b  +  X[:, J] W[:, J]^T

with ``m`` a 0/1 mask zeroing the outlier channels ``J``. The first MatMul is what INT8
dynamic quantization sees (its per-tensor range no longer set by the outliers); the second
is a ``K x |J|`` MatMul kept in FP32 (module ``<layer>.outlier``, excluded by the default
pattern of :data:`OUTLIER_PATTERN`). Exact in FP32 (the two parts sum to the original).

On MiniLM one channel of the FFN down projection's input reaches 14-25 against a median
channel max of 1.5-1.9. Splitting it out of those 4 layers took dynamic INT8's mean cosine
from 0.9919 to 0.9950 at 0.58x ORT FP32 latency (dynamic INT8 alone: 0.57x, same run);
splitting every layer's worst channel: 0.9965 at 0.62x (benchmarks/RESULTS.md).

Example:
    >>> recipe = [OutlierSplitConfig(), DynamicInt8Config(exclude=(OUTLIER_PATTERN,))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_range, check_regex, register_config
from edgeshrink.errors import UserError
from edgeshrink.quant.smooth import input_maxima
from edgeshrink.transforms import TransformContext, transform

__all__ = ["OutlierSplitConfig", "SplitLinear", "outlier_channels", "split_outliers",
           "OUTLIER_PATTERN"]

# module name of the side MatMul; ORT's pre-processing may rename its node (".../MatMul/...")
OUTLIER_PATTERN = r"\.outlier(\.MatMul)?$"


@register_config
@dataclass(frozen=True)
class OutlierSplitConfig(Config):
    """Keep each Linear's outlier input channels in an FP32 side MatMul (a model-stage step).

    Attributes:
        ratio: a channel is an outlier when its calibration max |x| exceeds ``ratio`` times
            the median channel max of that layer's input.
        max_channels: at most this many outlier channels per layer (the largest).
        layers: regex (``re.search``) on module names of the Linear layers to consider.
        calibration_samples: calibration samples whose maxima pick the channels.

    Example:
        >>> cfg = OutlierSplitConfig(ratio=6.0, max_channels=4)
    """

    kind = "outlier_split"
    stage = "model"
    family = "quantization"
    ratio: float = 6.0
    max_channels: int = 4
    layers: str = ""
    calibration_samples: int = 128

    def __post_init__(self) -> None:
        check_range("ratio", self.ratio, 1.0, 1e6)
        check_range("max_channels", self.max_channels, 1, 1 << 20)
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)
        check_regex("layers", self.layers)


class SplitLinear(nn.Module):
    """``linear(x * mask) + outlier(x[..., channels])``: equal to ``linear(x)`` in FP32."""

    def __init__(self, linear: nn.Linear, channels: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        mask = torch.ones(linear.in_features)
        mask[channels] = 0.0
        self.register_buffer("mask", mask)
        self.register_buffer("channels", channels.clone().long())
        self.outlier = nn.Linear(len(channels), linear.out_features, bias=False)
        with torch.no_grad():
            self.outlier.weight.copy_(linear.weight[:, channels])
            linear.weight[:, channels] = 0.0  # the masked inputs' weights are never used

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.mask) + self.outlier(x.index_select(-1, self.channels))


def outlier_channels(maxima: torch.Tensor, ratio: float, max_channels: int) -> torch.Tensor:
    """Indices of the channels whose max exceeds ``ratio`` x the median channel max."""
    over = torch.nonzero(maxima > ratio * maxima.median()).flatten()
    order = torch.argsort(maxima[over], descending=True)
    return over[order][:max_channels].sort().values


def split_outliers(model: nn.Module, cfg: OutlierSplitConfig, data) -> tuple[nn.Module, dict]:
    """Replace (in place) every selected Linear with outlier channels by a SplitLinear;
    return the model and ``{layer: [channels]}``."""
    pattern = re.compile(cfg.layers)
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and pattern.search(n)]  # fmt: skip
    if not names:
        raise UserError(f"outlier_split: no Linear layer matches layers={cfg.layers!r}.")
    maxima = input_maxima(model, names, data.head(cfg.calibration_samples))
    chosen = {}
    for name in names:
        if name not in maxima:
            continue
        channels = outlier_channels(maxima[name], cfg.ratio, cfg.max_channels)
        if len(channels) == 0:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, SplitLinear(getattr(parent, attr), channels))
        chosen[name] = channels.tolist()
    return model, chosen


@transform(OutlierSplitConfig)
def _handle(cfg: OutlierSplitConfig, model: nn.Module, ctx: TransformContext) -> nn.Module:
    return split_outliers(model, cfg, ctx.task.calibration)[0]
