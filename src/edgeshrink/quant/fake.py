"""Fake-quantization core: uniform affine quantization as differentiable tensor maths.

Three layers, as everywhere in edgeshrink:

* pure maths, no modules: :func:`qrange`, :func:`minmax_qparams`, :func:`fake_quantize`
  (straight-through estimator, Bengio et al. 2013, clipped as in PyTorch's own
  ``fake_quantize_per_channel_affine``) and :func:`lsq_quantize` (learned step size,
  Esser et al. 2020, "Learned Step Size Quantization");
* module surgery through one walker: :func:`wrap_layers` swaps Conv/Linear layers chosen by
  name for :class:`QuantWrap`, :func:`unwrap` puts plain layers with the quantized
  (dequantized-to-FP32) weights back;
* the algorithms that decide (QAT, low-bit, k-means, mixed precision) live in sibling modules.

Granularity: ``tensor`` (one scale), ``channel`` (one per output channel, axis 0) or
``group`` (``group_size`` consecutive weights of one output channel share a scale).

Example:
    >>> spec = QuantSpec(bits=4, granularity="channel")
    >>> wq = quantize_weight(torch.randn(8, 16), spec)   # dequantized FP32, 16 levels a row
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeshrink.config import check_choice, check_range
from edgeshrink.errors import UserError

__all__ = [
    "QuantSpec",
    "qrange",
    "minmax_qparams",
    "fake_quantize",
    "quantize_weight",
    "lsq_quantize",
    "LsqQuantizer",
    "QuantWrap",
    "LAYER_TYPES",
    "quantizable_layers",
    "wrap_layers",
    "unwrap",
    "layer_filter",
    "fold_batchnorm",
]

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class QuantSpec:
    """How one tensor is quantized.

    Attributes:
        bits: 1 to 16.
        symmetric: zero point 0 and a signed grid ``[-2^(b-1), 2^(b-1)-1]``; else an
            unsigned grid ``[0, 2^b - 1]`` with a zero point.
        granularity: ``tensor``, ``channel`` (axis 0) or ``group``.
        group_size: weights per group along the flattened rows (``group`` only).
    """

    bits: int = 8
    symmetric: bool = True
    granularity: str = "tensor"
    group_size: int = 0

    def __post_init__(self) -> None:
        check_range("bits", self.bits, 1, 16)
        if int(self.bits) != self.bits:
            raise UserError(f"bits must be a whole number from 1 to 16, got {self.bits}.")
        check_choice("granularity", self.granularity, ("tensor", "channel", "group"))
        if self.granularity == "group":
            check_range("group_size", self.group_size, 1, 1 << 30)

    @property
    def qmin(self) -> int:
        return qrange(self.bits, self.symmetric)[0]

    @property
    def qmax(self) -> int:
        return qrange(self.bits, self.symmetric)[1]


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer grid of ``bits``: signed ``[-2^(b-1), 2^(b-1)-1]`` or unsigned ``[0, 2^b-1]``."""
    check_range("bits", bits, 1, 16)
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _grouped(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """``x`` as rows over which one scale applies: (1, N), (C, N/C) or (C*G, group_size)."""
    if spec.granularity == "tensor":
        return x.reshape(1, -1)
    rows = x.reshape(x.shape[0], -1)
    if spec.granularity == "channel":
        return rows
    if rows.shape[1] % spec.group_size:
        raise UserError(
            f"group_size {spec.group_size} does not divide the {rows.shape[1]} weights per "
            f"output channel; pick a divisor of {rows.shape[1]}."
        )
    return rows.reshape(-1, spec.group_size)


def minmax_qparams(
    x: torch.Tensor, spec: QuantSpec, eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max scale and zero point, one per row of the spec's grouping (shape (R, 1)).

    Symmetric: ``scale = max|x| / (2^(b-1) - 1)`` (for 1 bit: ``max|x|``). Asymmetric: the
    range always contains 0 so that zero is exact (as in PyTorch's observers).
    """
    rows = _grouped(x.detach(), spec)
    if spec.symmetric:
        amax = rows.abs().amax(dim=1, keepdim=True)
        scale = amax / max(spec.qmax, 1)
        zp = torch.zeros_like(scale)
    else:
        lo = rows.amin(dim=1, keepdim=True).clamp(max=0)
        hi = rows.amax(dim=1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / (spec.qmax - spec.qmin)
        zp = (spec.qmin - torch.round(lo / scale.clamp(min=eps))).clamp(spec.qmin, spec.qmax)
    return scale.clamp(min=eps), zp


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    # Straight-through estimator: round forward, identity backward (Bengio et al. 2013).
    # Written as round(x) + (x - x) so the forward value is exactly round(x).
    return torch.round(x).detach() + (x - x.detach())


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int
) -> torch.Tensor:
    """``(clamp(round(x / s) + z, qmin, qmax) - z) * s`` with a clipped straight-through grad.

    Same arithmetic as ``torch.fake_quantize_per_channel_affine`` (``x * (1/s)``, round half
    to even); the gradient is 1 inside the clamp range and 0 outside. If ``scale`` requires
    grad it receives the LSQ gradient ``round(x/s) - x/s`` inside, ``q - z`` at the clamp.
    """
    q = torch.clamp(_round_ste(x * (1.0 / scale)) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def quantize_weight(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Min-max fake-quantized copy of ``w`` (dequantized FP32) at ``spec``'s granularity."""
    rows = _grouped(w, spec)
    scale, zp = minmax_qparams(w, spec)
    return fake_quantize(rows, scale, zp, spec.qmin, spec.qmax).reshape(w.shape)


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    # LSQ: forward x, backward g * grad (keeps the step's update in scale with the weights').
    return (x * g - (x * g).detach()) + x.detach()


def lsq_quantize(
    x: torch.Tensor,
    step: torch.Tensor,
    qmin: int,
    qmax: int,
    zero_point: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Learned-step-size fake quantization (Esser et al. 2020).

    ``step`` broadcasts against ``x``; its gradient is scaled by ``1/sqrt(N * qmax)`` with
    ``N`` the elements one step covers, as in the paper.
    """
    per_step = max(x.numel() // max(step.numel(), 1), 1)
    g = 1.0 / math.sqrt(per_step * max(qmax, 1))
    return fake_quantize(x, _grad_scale(step, g), zero_point, qmin, qmax)


class LsqQuantizer(nn.Module):
    """Fake-quantizes a tensor with a learned step (weights: per channel; activations: one).

    Weights: symmetric signed grid, ``step`` of shape (C, 1, ...), initialised at min-max.
    Activations: asymmetric unsigned grid (uint8 at 8 bits, as ONNX Runtime's fast U8S8
    path wants) with an integer zero point fixed at calibration and a learned step.
    ``observe`` (the first batches, before training) sets the range by min-max.
    """

    def __init__(self, bits: int, *, weight: torch.Tensor | None = None, per_channel=True):
        super().__init__()
        self.bits = bits
        self.signed = weight is not None
        self.qmin, self.qmax = qrange(bits, self.signed)
        if weight is not None:
            spec = QuantSpec(bits, True, "channel" if per_channel else "tensor")
            scale, _ = minmax_qparams(weight, spec)
            shape = (-1,) + (1,) * (weight.dim() - 1) if per_channel else ()
            self.step = nn.Parameter(scale.reshape(shape).clone())
            self.register_buffer("zero_point", torch.zeros(()))
            self.register_buffer("observing", torch.tensor(False))
        else:
            self.step = nn.Parameter(torch.ones(()))
            self.register_buffer("zero_point", torch.zeros(()))
            self.register_buffer("observing", torch.tensor(True))
            self.register_buffer("lo", torch.tensor(float("inf")))
            self.register_buffer("hi", torch.tensor(float("-inf")))

    def _observe(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            self.lo.fill_(min(float(self.lo), float(x.min()), 0.0))
            self.hi.fill_(max(float(self.hi), float(x.max()), 0.0))
            spec = QuantSpec(self.bits, symmetric=False)
            scale, zp = minmax_qparams(torch.stack([self.lo, self.hi]), spec)
            self.step.fill_(float(scale))
            self.zero_point.fill_(float(zp))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(self.observing):
            self._observe(x)
            return x
        return lsq_quantize(x, self.step.abs() + 1e-12, self.qmin, self.qmax, self.zero_point)


class QuantWrap(nn.Module):
    """A Conv/Linear layer whose weight and input go through quantizers.

    ``weight_q(weight) -> weight`` may ignore its input (a codebook holding the weights);
    ``act_q`` fake-quantizes the layer's input. Either may be None.
    """

    def __init__(self, layer: nn.Module, weight_q: nn.Module | None, act_q: nn.Module | None):
        super().__init__()
        self.layer = layer
        self.weight_q = weight_q
        self.act_q = act_q

    def quantized_weight(self) -> torch.Tensor:
        w = self.layer.weight
        return self.weight_q(w) if self.weight_q is not None else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_q is not None:
            x = self.act_q(x)
        w, layer = self.quantized_weight(), self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, w, layer.bias)
        return layer._conv_forward(x, w, layer.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Conv+BatchNorm pairs fused (eval statistics) with torch.fx; unchanged if none or if
    the model cannot be traced."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(model).eval())
    except Exception:  # untraceable control flow: QAT still runs, BN stays FP32
        return model


def layer_filter(exclude: tuple[str, ...] = ()) -> Callable[[str, nn.Module], bool]:
    """``fn(name, module)``: Conv/Linear layers whose name matches none of ``exclude`` (regex)."""
    return lambda name, m: isinstance(m, LAYER_TYPES) and not any(
        re.fullmatch(p, name) for p in exclude
    )


def quantizable_layers(model: nn.Module, keep=None) -> dict[str, nn.Module]:
    """Conv/Linear layers by module name, in forward-definition order, filtered by ``keep``."""
    keep = keep or layer_filter()
    return {n: m for n, m in model.named_modules() if n and keep(n, m)}


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def wrap_layers(
    model: nn.Module, make: Callable[[str, nn.Module], QuantWrap | None], keep=None
) -> dict[str, QuantWrap]:
    """The one walker: replace each kept layer by ``make(name, layer)`` (None: leave it)."""
    wrapped = {}
    for name, layer in quantizable_layers(model, keep).items():
        new = make(name, layer)
        if new is not None:
            _set(model, name, new)
            wrapped[name] = new
    return wrapped


def unwrap(model: nn.Module) -> nn.Module:
    """Replace every :class:`QuantWrap` by its layer holding the quantized weights (FP32).

    Activation quantizers are dropped: the result computes what the wrapped model computes
    only where activations were not quantized.
    """
    for name, mod in list(model.named_modules()):
        if isinstance(mod, QuantWrap):
            with torch.no_grad():
                w = mod.quantized_weight().detach().clone()
            layer = mod.layer
            layer.weight = nn.Parameter(w)
            _set(model, name, layer)
    return model
