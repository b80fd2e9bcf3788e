"""Low-bit weights no runtime executes: uniform 1-16 bits, binary, ternary; simulated honestly.

* ``uniform``: min-max affine grid at ``bits`` (per channel / group / tensor).
* ``binary``: ``alpha * sign(w)``, ``alpha = mean|w|`` per output channel (XNOR-Net,
  Rastegari et al. 2016); 1 bit a weight.
* ``ternary``: ``{-alpha, 0, +alpha}`` with threshold ``0.7 mean|w|`` and ``alpha`` the mean
  magnitude above it (Ternary Weight Networks, Li & Liu 2016); stored in 2 bits.

``epochs > 0`` retrains through the quantizer with a straight-through estimator on latent
FP32 weights (BinaryConnect, Courbariaux et al. 2015). The artifact is ``simulated``: its
figures come from the torch model with quantized weights, its ONNX file is the dense FP32
decoding used for latency, and ``size_encoded_bytes`` is the real packed size: bits times
weights plus one FP32 scale per channel/group, everything else FP32.

Example:
    >>> art = quantize(model, LowBitConfig(bits=4), data=task.calibration)
    >>> art.runtime, art.size_encoded_bytes
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.quant.fake import (
    QuantSpec,
    QuantWrap,
    fold_batchnorm,
    layer_filter,
    quantizable_layers,
    quantize_weight,
    unwrap,
    wrap_layers,
)
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = [
    "LowBitConfig",
    "binarize",
    "ternarize",
    "WeightFn",
    "packed_bytes",
    "end_layers",
    "simulated_artifact",
    "retrain",
    "lowbit_model",
]


@register_config
@dataclass(frozen=True)
class LowBitConfig(Config):
    """Weight-only low-bit quantization, simulated.

    Attributes:
        bits: 1-16 (``uniform``); ``binary`` is 1 bit, ``ternary`` 2.
        scheme: ``uniform``, ``binary`` or ``ternary``.
        granularity: ``channel``, ``group`` or ``tensor`` (``uniform`` only).
        group_size: weights sharing a scale (``group`` only; must divide each row).
        ends_bits: first and last layer at this uniform width (0: like the others).
        epochs: straight-through retraining epochs on the task's training data.
        lr: Adam learning rate of that retraining.
    """

    kind = "lowbit"
    stage = "artifact"
    family = "quantization"
    bits: int = 4
    scheme: str = "uniform"
    granularity: str = "channel"
    group_size: int = 0
    ends_bits: int = 0
    epochs: int = 0
    lr: float = 1e-4

    def __post_init__(self) -> None:
        check_choice("scheme", self.scheme, ("uniform", "binary", "ternary"))
        QuantSpec(self.bits, True, self.granularity, self.group_size)  # validates bits/group
        if self.ends_bits:
            check_range("ends_bits", self.ends_bits, 1, 16)
        check_range("epochs", self.epochs, 0, 1000)
        check_range("lr", self.lr, 0.0, 10.0)

    @property
    def weight_bits(self) -> int:
        return {"binary": 1, "ternary": 2}.get(self.scheme, self.bits)


# ---- pure maths ----------------------------------------------------------------------------
def _per_channel_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    rows = x.reshape(x.shape[0], -1)
    if mask is None:
        m = rows.mean(dim=1)
    else:
        mk = mask.reshape(x.shape[0], -1).to(x.dtype)
        m = (rows * mk).sum(1) / mk.sum(1).clamp(min=1)
    return m.reshape((-1,) + (1,) * (x.dim() - 1))


def binarize(w: torch.Tensor) -> torch.Tensor:
    """XNOR-Net weights: ``mean|w| * sign(w)`` per output channel (sign(0) = +1)."""
    alpha = _per_channel_mean(w.abs())
    return torch.where(w >= 0, alpha, -alpha)


def ternarize(w: torch.Tensor, ratio: float = 0.7) -> torch.Tensor:
    """TWN weights: zero below ``ratio * mean|w|``, ``±alpha`` above (per output channel)."""
    delta = ratio * _per_channel_mean(w.abs())
    keep = w.abs() > delta
    alpha = _per_channel_mean(w.abs(), keep)
    return torch.sign(w) * alpha * keep


class WeightFn(nn.Module):
    """``fn(w)`` forward, identity gradient (straight-through) to the latent weights."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # forward exactly fn(w) (w - w is exactly 0), gradient identity to w
        return self.fn(w.detach()).detach() + (w - w.detach())


# ---- sizes and artifacts -------------------------------------------------------------------
def packed_bytes(model: nn.Module, layer_bits: dict[str, tuple[int, int]]) -> int:
    """Bytes of the packed form: ``{layer: (bits, n_fp32_scales)}`` weights at ``bits`` each
    (bit-packed per layer, scales FP32), every other parameter and buffer FP32."""
    total = 0
    for name, t in model.state_dict().items():
        layer = name.removesuffix(".weight")
        if name.endswith(".weight") and layer in layer_bits:
            bits, scales = layer_bits[layer]
            total += math.ceil(bits * t.numel() / 8) + 4 * scales
        elif t.is_floating_point():
            total += 4 * t.numel()
    return total


def end_layers(model: nn.Module) -> tuple[str, str]:
    """Names of the first and last Conv/Linear layers (in definition order)."""
    names = list(quantizable_layers(model))
    return names[0], names[-1]


def _n_scales(layer: nn.Module, scheme: str, spec: QuantSpec) -> int:
    if scheme != "uniform" or spec.granularity == "channel":
        return layer.weight.shape[0]
    if spec.granularity == "group":
        return layer.weight.numel() // spec.group_size
    return 1


def lowbit_model(model: nn.Module, cfg: LowBitConfig) -> tuple[nn.Module, dict]:
    """Wrap every Conv/Linear of a copy of ``model`` (BatchNorm folded first, as deployment
    does); returns it and ``{layer: (bits, scales)}``."""
    model = fold_batchnorm(copy.deepcopy(model).eval())
    ends = end_layers(model) if cfg.ends_bits else ()
    spec = QuantSpec(cfg.bits, True, cfg.granularity, cfg.group_size)
    bits: dict[str, tuple[int, int]] = {}

    def make(name: str, layer: nn.Module) -> QuantWrap:
        if name in ends:
            s = QuantSpec(cfg.ends_bits, True, "channel")
            fn = lambda w, s=s: quantize_weight(w, s)  # noqa: E731
            bits[name] = (cfg.ends_bits, layer.weight.shape[0])
        else:
            fn = {"binary": binarize, "ternary": ternarize}.get(
                cfg.scheme, lambda w: quantize_weight(w, spec)
            )
            bits[name] = (cfg.weight_bits, _n_scales(layer, cfg.scheme, spec))
        return QuantWrap(layer, WeightFn(fn), None)

    wrap_layers(model, make, layer_filter())
    return model, bits


def retrain(model: nn.Module, ctx: TransformContext, *, epochs: int, lr: float,
            distill: float = 0.0) -> nn.Module:
    """Fine-tune a wrapped model on the task's training data (edgeshrink.train.fit)."""
    from edgeshrink.train import FinetuneConfig, epoch_reporter, fit

    if epochs == 0:
        return model.eval()
    cfg = FinetuneConfig(epochs=epochs, lr=lr, distill=distill)
    return fit(model, cfg, ctx.task.train, teacher=ctx.teacher, seed=ctx.seed,
               on_epoch=epoch_reporter(ctx, "retrain", epochs))


def _simulator(model: nn.Module) -> Callable:
    model = model.eval()

    def run(*inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs))
        return (out[0] if isinstance(out, tuple | list) else out).numpy()

    return run


def simulated_artifact(
    wrapped: nn.Module,
    ctx: TransformContext,
    *,
    precision: str,
    size_encoded_bytes: int,
    notes: dict | None = None,
) -> Artifact:
    """A ``simulated`` artifact: metric from the torch model, dense FP32 ONNX for latency."""
    from edgeshrink.export import export_onnx

    wrapped = wrapped.eval()
    dense = unwrap(copy.deepcopy(wrapped)).eval()
    path = export_onnx(dense, ctx.task.example_inputs(), ctx.artifact_path(),
                       input_names=ctx.task.input_names, dynamic_axes=ctx.task.dynamic_axes)
    notes = {"runs_as": "dense FP32 ONNX of the dequantized weights (latency only)",
             **(notes or {})}
    return Artifact(path=path, model=dense, precision=precision, runtime="simulated",
                    size_encoded_bytes=int(size_encoded_bytes), simulate=_simulator(wrapped),
                    notes=notes)


@transform(LowBitConfig)
def _handle(cfg: LowBitConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    wrapped, bits = lowbit_model(model, cfg)
    wrapped = retrain(wrapped, ctx, epochs=cfg.epochs, lr=cfg.lr)
    precision = cfg.scheme if cfg.scheme != "uniform" else f"int{cfg.bits}"
    return simulated_artifact(
        wrapped, ctx, precision=precision,
        size_encoded_bytes=packed_bytes(unwrap(copy.deepcopy(wrapped)), bits),
        notes={"scheme": cfg.scheme, "granularity": cfg.granularity,
               "layer_bits": {k: v[0] for k, v in bits.items()}},
    )
