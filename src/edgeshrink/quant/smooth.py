"""SmoothQuant: move activation outliers into the weights before static INT8.

Xiao et al. 2023 ("SmoothQuant"): a Linear computes ``X W^T``; for a per-input-channel
scale ``s`` it equals ``(X / s) (W * s)^T``. With ``s_j = max|X_j|^a / max|W_:,j|^(1-a)``
the few channels where activations reach 10-100x the rest (transformers' outliers) are
divided down, and the weights, which quantize per output channel anyway, absorb them.

Folding ``1/s`` into the preceding LayerNorm is exact only when that LayerNorm feeds
nothing else. In post-LN BERT (MiniLM) the LayerNorm output is also the residual branch,
so folding would change the model; here the ``1/s`` is an explicit per-channel ``Mul``
before the Linear (one elementwise op on a 128x384 tensor, next to the MatMul's 128x384x384),
which is exact for any model. The static quantizer then sees the smoothed tensor.

Example:
    >>> recipe = [SmoothQuantConfig(alpha=0.5), StaticInt8Config(calibrator="percentile")]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_range, check_regex, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.transforms import TransformContext, transform

__all__ = ["SmoothQuantConfig", "SmoothedLinear", "smooth_scales", "smooth_model", "input_maxima"]


@register_config
@dataclass(frozen=True)
class SmoothQuantConfig(Config):
    """Per-channel activation-to-weight scale migration before INT8 (a model-stage step).

    Attributes:
        alpha: migration strength ``a`` in ``s = max|X|^a / max|W|^(1-a)`` (0.5 in the paper;
            higher moves more of the difficulty into the weights).
        layers: regex (``re.search``) on module names of the Linear layers to smooth.
        calibration_samples: calibration samples whose activation maxima set ``s``.

    Example:
        >>> cfg = SmoothQuantConfig(alpha=0.5, layers=r"encoder")
    """

    kind = "smoothquant"
    stage = "model"
    family = "quantization"
    alpha: float = 0.5
    layers: str = ""
    calibration_samples: int = 128

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("calibration_samples", self.calibration_samples, 1, 1_000_000)
        check_regex("layers", self.layers)


class SmoothedLinear(nn.Module):
    """``linear(x * inv_scale)`` with ``linear``'s weight already multiplied by the scale."""

    def __init__(self, linear: nn.Linear, inv_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def smooth_scales(act_max: torch.Tensor, weight: torch.Tensor, alpha: float) -> torch.Tensor:
    """``s_j = max|X_j|^a / max_i |W_ij|^(1-a)``, clamped away from 0 (Xiao et al. 2023, eq. 4)."""
    w_max = weight.abs().amax(dim=0).clamp(min=1e-5)
    s = act_max.clamp(min=1e-5).pow(alpha) / w_max.pow(1 - alpha)
    return s.clamp(min=1e-5)


def input_maxima(model: nn.Module, names: list[str], data: Dataset) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| of each named Linear over ``data``."""
    modules = dict(model.named_modules())
    maxima: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_m, inp, _out):
            x = inp[0].detach().abs().reshape(-1, inp[0].shape[-1]).amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for xs, _ in data.batches(32):
                model(*xs)
    finally:
        for h in handles:
            h.remove()
    return maxima


def smooth_model(model: nn.Module, cfg: SmoothQuantConfig, data: Dataset) -> nn.Module:
    """Wrap every Linear matching ``cfg.layers`` in a :class:`SmoothedLinear` (in place)."""
    rx = re.compile(cfg.layers)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and rx.search(n)]
    if not names:
        raise UserError(f"smoothquant: no Linear layer matches layers={cfg.layers!r}.")
    model.eval()
    maxima = input_maxima(model, names, data.head(cfg.calibration_samples))
    for name in names:
        if name not in maxima:  # never called on the data: leave it alone
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        s = smooth_scales(maxima[name], linear.weight.data, cfg.alpha)
        with torch.no_grad():
            linear.weight.mul_(s)
        setattr(parent, child, SmoothedLinear(linear, (1.0 / s).to(linear.weight.dtype)))
    return model


@transform(SmoothQuantConfig)
def _smooth(cfg: SmoothQuantConfig, model: nn.Module, ctx: TransformContext) -> nn.Module:
    return smooth_model(model, cfg, ctx.task.calibration)
