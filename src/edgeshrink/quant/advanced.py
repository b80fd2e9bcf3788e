"""Post-training methods that beat plain min-max rounding at low bit-width.

* AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
  Quantization"): the min-max grid stays, but each weight learns whether to round up or
  down, minimising the layer's output error on calibration data; a rectified sigmoid
  ``h(V)`` relaxes the choice and a regulariser ``1 - |2h - 1|^beta`` (beta annealed
  20 -> 2) drives it to 0 or 1. Layers are done in order, each seeing the inputs of the
  already-quantized layers before it and the FP32 model's outputs as targets.
* Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization"): the mean shift
  that quantized weights cause in a layer's output, measured on calibration data, is
  added back to its bias.

Both yield weight-only ``simulated`` artifacts at the uniform packed size.

Example:
    >>> art = apply_recipe([AdvancedPtqConfig(bits=4, method="adaround")], ctx)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.quant.fake import (
    QuantSpec,
    _grouped,
    fold_batchnorm,
    minmax_qparams,
    quantizable_layers,
)
from edgeshrink.quant.lowbit import packed_bytes, simulated_artifact
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["AdvancedPtqConfig", "adaround_weight", "advanced_ptq"]

ZETA, GAMMA = 1.1, -0.1  # stretch of the rectified sigmoid (Louizos et al. 2018)


@register_config
@dataclass(frozen=True)
class AdvancedPtqConfig(Config):
    """Weight-only PTQ with adaptive rounding and/or bias correction.

    Attributes:
        bits: weight bits (1-16).
        method: ``adaround``, ``bias_correction`` or ``adaround+bias_correction``.
        granularity: ``channel`` or ``tensor`` scales (min-max grid).
        iters: AdaRound optimisation steps per layer.
        lr: Adam learning rate of the rounding variables.
        reg: weight of the rounding regulariser (paper: 0.01).
        batch_size: calibration samples per step.
        samples: calibration samples used at most.
    """

    kind = "ptq_advanced"
    stage = "artifact"
    family = "quantization"
    bits: int = 4
    method: str = "adaround"
    granularity: str = "channel"
    iters: int = 400
    lr: float = 1e-2
    reg: float = 0.01
    batch_size: int = 64
    samples: int = 512

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 1, 16)
        check_choice("method", self.method,
                     ("adaround", "bias_correction", "adaround+bias_correction"))
        check_choice("granularity", self.granularity, ("channel", "tensor"))
        check_range("iters", self.iters, 0, 1_000_000)
        check_range("lr", self.lr, 0.0, 10.0)
        check_range("reg", self.reg, 0.0, 1e6)
        check_range("batch_size", self.batch_size, 1, 1 << 20)
        check_range("samples", self.samples, 1, 1 << 30)


def _rect_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _layer_out(layer: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, layer.bias)
    return layer._conv_forward(x, w, layer.bias)


def adaround_weight(
    layer: nn.Module, x: torch.Tensor, target: torch.Tensor, spec: QuantSpec, *,
    iters: int = 400, lr: float = 1e-2, reg: float = 0.01, batch_size: int = 64, seed: int = 0,
) -> torch.Tensor:
    """Quantized (dequantized FP32) weight of ``layer`` with learned rounding.

    ``x``: the layer's inputs on calibration data; ``target``: the FP32 model's outputs.
    """
    w = layer.weight.detach()
    rows = _grouped(w, spec)
    scale, zp = minmax_qparams(w, spec)
    base = torch.floor(rows / scale)
    frac = (rows / scale - base).clamp(0.01, 0.99)
    v = nn.Parameter(-torch.log((ZETA - GAMMA) / (frac - GAMMA) - 1))
    opt = torch.optim.Adam([v], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    warmup = int(0.2 * iters)
    for it in range(iters):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=gen)
        h = _rect_sigmoid(v)
        q = torch.clamp(base + h + zp, spec.qmin, spec.qmax) - zp
        out = _layer_out(layer, x[idx], (q * scale).reshape(w.shape))
        loss = (out - target[idx]).pow(2).flatten(1).sum(1).mean()
        if it >= warmup:  # beta annealed 20 -> 2 after a warm-up without the regulariser
            beta = 2 + 18 * (1 - (it - warmup) / max(iters - warmup, 1))
            loss = loss + reg * (1 - (2 * h - 1).abs().pow(beta)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    hard = (_rect_sigmoid(v.detach()) >= 0.5).to(w.dtype) if iters else torch.round(frac)
    q = torch.clamp(base + hard + zp, spec.qmin, spec.qmax) - zp
    return (q * scale).reshape(w.shape)


def _capture(model: nn.Module, name: str, data: Dataset, *, output: bool) -> torch.Tensor:
    layer, got = model.get_submodule(name), []

    def hook(_m, inp, out):
        got.append((out if output else inp[0]).detach())

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for xs, _ in data.batches(256):
                model(*xs)
    finally:
        handle.remove()
    return torch.cat(got)


def advanced_ptq(model: nn.Module, cfg: AdvancedPtqConfig, data: Dataset) -> nn.Module:
    """A copy of ``model`` with quantized weights, layer by layer in definition order."""
    fp = fold_batchnorm(copy.deepcopy(model).eval())
    qmodel = copy.deepcopy(fp)
    spec = QuantSpec(cfg.bits, True, cfg.granularity)
    data = data.head(cfg.samples)
    for name, layer in quantizable_layers(qmodel).items():
        x = _capture(qmodel, name, data, output=False)
        target = _capture(fp, name, data, output=True)
        iters = cfg.iters if "adaround" in cfg.method else 0
        w = adaround_weight(layer, x, target, spec, iters=iters, lr=cfg.lr, reg=cfg.reg,
                            batch_size=cfg.batch_size)
        with torch.no_grad():
            layer.weight.copy_(w)
            if "bias_correction" in cfg.method and layer.bias is not None:
                shift = (target - _layer_out(layer, x, w)).transpose(0, 1).flatten(1).mean(1)
                layer.bias.add_(shift)
    return qmodel


@transform(AdvancedPtqConfig)
def _handle(cfg: AdvancedPtqConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    qmodel = advanced_ptq(model, cfg, ctx.task.calibration)
    layers = quantizable_layers(qmodel)
    bits = {n: (cfg.bits, m.weight.shape[0] if cfg.granularity == "channel" else 1)
            for n, m in layers.items()}
    return simulated_artifact(qmodel, ctx, precision=f"int{cfg.bits}",
                              size_encoded_bytes=packed_bytes(qmodel, bits),
                              notes={"method": cfg.method})
