"""Cross-layer equalization (CLE) for ReLU / ReLU6 networks, a step before INT8.

Nagel et al. 2019 ("Data-Free Quantization Through Weight Equalization and Bias
Correction", sec. 4.1): for two layers joined through a positively homogeneous
activation, ``W2 f(W1 x + b1) = (W2 S) f(S^-1 (W1 x + b1))`` for any positive diagonal
``S``. Choosing ``s_i = sqrt(r1_i * r2_i) / r2_i`` (``r1_i``: the range of output channel
``i`` of ``W1``, ``r2_i``: of input channel ``i`` of ``W2``) gives both the same range
``sqrt(r1_i r2_i)``, so one per-tensor scale fits every channel far better: MobileNetV2's
depthwise convs span ranges over 100x apart after BatchNorm folding.

ReLU is homogeneous; ReLU6 is not (the clip at 6 does not scale). Where the paper swaps
ReLU6 for ReLU (changing the FP32 model), we keep the model exact: a scaled ReLU6 becomes
:class:`ChannelClip`, ``min(relu(x), 6 / s_i)`` per channel, which exports as Relu + Min.

Layers: BatchNorm is folded into the conv before it (:func:`fold_batchnorm`); pairs are
Conv/Linear -> [ReLU | ReLU6 | Identity] -> Conv/Linear whose intermediate tensors feed
nothing else (found with ``torch.fx``); the second layer may be depthwise. Residual adds
end a chain: the tensors they join are left as they are.

Example:
    >>> recipe = [CrossLayerEqualizationConfig(), StaticInt8Config(per_channel=False)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.transforms import transform

__all__ = [
    "CrossLayerEqualizationConfig", "ChannelClip", "fold_batchnorm", "equalization_pairs",
    "equalize",
]

_LAYERS = (nn.Conv2d, nn.Linear)


@register_config
@dataclass(frozen=True)
class CrossLayerEqualizationConfig(Config):
    """Equalize per-channel weight ranges of consecutive layers (a model-stage step that
    leaves the FP32 function unchanged), before per-tensor INT8.

    Attributes:
        iterations: sweeps over all pairs (a chain of pairs converges in a few; the paper
            iterates to convergence).

    Example:
        >>> recipe = [CrossLayerEqualizationConfig(), StaticInt8Config(per_channel=False)]
    """

    kind = "cross_layer_equalization"
    stage = "model"
    family = "quantization"
    iterations: int = 4

    def __post_init__(self) -> None:
        check_range("iterations", self.iterations, 1, 100)


class ChannelClip(nn.Module):
    """``min(relu(x), bound)`` with one bound per channel (axis 1): a ReLU6 after its
    channels were divided by ``s`` (bound ``6 / s``)."""

    def __init__(self, bound: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("bound", bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.minimum(torch.relu(x), self.bound.view(shape))


# ---------------------------------------------------------------------------- graph


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _trace(model: nn.Module):
    import torch.fx

    try:
        return torch.fx.symbolic_trace(model)
    except Exception as exc:  # data-dependent control flow and the like
        raise UserError(f"cross-layer equalization needs a torch.fx-traceable model "
                        f"({type(exc).__name__}: {exc}).") from None


def _single_module_user(node, modules):
    users = list(node.users)
    if len(users) != 1 or users[0].op != "call_module":
        return None
    return users[0], modules[users[0].target]


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d (and alone reads it) into that
    conv, replacing the BatchNorm with Identity; returns how many were folded."""
    graph = _trace(model)
    modules = dict(model.named_modules())
    count = 0
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d):
            continue
        user = _single_module_user(node, modules)
        if user is None or not isinstance(user[1], nn.BatchNorm2d):
            continue
        conv, bn = modules[node.target], user[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
        _set(model, user[0].target, nn.Identity())
        count += 1
    return count


def _activation(module: nn.Module) -> str | None:
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.ReLU6 | ChannelClip):
        return "clip"
    if isinstance(module, nn.Identity):
        return "identity"
    return None


def _dense_or_depthwise(layer: nn.Module) -> bool:
    groups = getattr(layer, "groups", 1)
    return groups == 1 or groups == layer.in_channels == layer.out_channels


def equalization_pairs(model: nn.Module) -> list[tuple[str, list[str], str]]:
    """``(first layer, [activation modules between], second layer)`` for every pair that
    CLE may scale: the first dense or depthwise, the second dense or depthwise (a
    depthwise first layer's output channel ``i`` is its own), joined only through
    ReLU/ReLU6/Identity modules whose outputs feed nothing else."""
    graph = _trace(model)
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _LAYERS):
            continue
        if not _dense_or_depthwise(modules[node.target]):  # grouped: channels mix per group
            continue
        between, cur = [], node
        while (user := _single_module_user(cur, modules)) is not None:
            cur, module = user
            if isinstance(module, _LAYERS) and _dense_or_depthwise(module):
                pairs.append((node.target, between, cur.target))
                break
            if _activation(module) is None:
                break
            between.append(cur.target)
    return pairs


# ---------------------------------------------------------------------------- maths


def _out_ranges(layer: nn.Module) -> torch.Tensor:
    return layer.weight.detach().abs().flatten(1).amax(1)


def _in_ranges(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach().abs()
    if getattr(layer, "groups", 1) > 1:  # depthwise: input channel i is output channel i
        return w.flatten(1).amax(1)
    return w.transpose(0, 1).flatten(1).amax(1)


def equalization_scales(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """``s_i = sqrt(r1_i r2_i) / r2_i`` (Nagel et al. 2019, eq. 9); 1 where a range is 0."""
    s = torch.sqrt(r1 * r2) / r2
    return torch.where((r1 > 0) & (r2 > 0), s, torch.ones_like(s))


@torch.no_grad()
def _scale_pair(model: nn.Module, first: str, between: list[str], second: str) -> None:
    a, b = model.get_submodule(first), model.get_submodule(second)
    s = equalization_scales(_out_ranges(a), _in_ranges(b))
    a.weight.div_(s.view(-1, *([1] * (a.weight.dim() - 1))))
    if a.bias is not None:
        a.bias.div_(s)
    if getattr(b, "groups", 1) > 1:
        b.weight.mul_(s.view(-1, *([1] * (b.weight.dim() - 1))))
    else:
        b.weight.mul_(s.view(1, -1, *([1] * (b.weight.dim() - 2))))
    for name in between:
        act = model.get_submodule(name)
        if isinstance(act, nn.ReLU6):
            _set(model, name, ChannelClip(torch.full_like(s, 6.0) / s))
        elif isinstance(act, ChannelClip):
            act.bound.div_(s)


def equalize(model: nn.Module, iterations: int = 4) -> int:
    """Fold BatchNorm, then equalize every pair ``iterations`` times, in place; returns the
    number of pairs (a model with none is a user error: CLE would change nothing)."""
    model.eval()
    fold_batchnorm(model)
    pairs = equalization_pairs(model)
    if not pairs:
        raise UserError("cross-layer equalization found no Conv/Linear pair joined through "
                        "ReLU or ReLU6 in this model; it would change nothing.")
    for _ in range(iterations):
        for first, between, second in pairs:
            _scale_pair(model, first, between, second)
    return len(pairs)


@transform(CrossLayerEqualizationConfig)
def _handle(cfg: CrossLayerEqualizationConfig, model: nn.Module, _ctx) -> nn.Module:
    equalize(model, cfg.iterations)
    return model
