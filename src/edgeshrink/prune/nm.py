"""N:M semi-structured sparsity: in every group of M consecutive weights along the input
dimension, at most N are non-zero (2:4 by default; Mishra et al. 2021, "Accelerating Sparse
Deep Neural Networks").

Groups run along the reduction (input) dimension, as sparse tensor cores expect: for a
Linear ``W[out, in]`` consecutive input features; for a Conv ``W[out, in, kh, kw]``
consecutive *input channels* at each kernel position (the layout NVIDIA's ASP and TensorRT
use, weights viewed as ``[out, kh, kw, in]``). Layers whose input dimension is not a
multiple of M (e.g. a first conv with one input channel) are left dense, as ASP does,
unless ``skip_incompatible=False``, which makes them an error naming the layer.

Example:
    >>> model = prune_nm(model, NMConfig(n=2, m=4))
    >>> is_nm_sparse(model.fc.weight, 2, 4)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.prune.unstructured import apply_masks, select_weights
from edgeshrink.transforms import transform

__all__ = [
    "NMConfig",
    "HARDWARE_SUPPORT",
    "ACCELERATES_KEY",
    "nm_mask",
    "to_groups",
    "from_groups",
    "nm_compatible",
    "is_nm_sparse",
    "prune_nm",
]

#: Which hardware runs N:M sparsity faster; the advisor quotes this verbatim.
HARDWARE_SUPPORT = (
    "2:4 sparsity is accelerated only by NVIDIA Ampere and newer GPUs (A100, H100, RTX 30xx+, "
    "Jetson Orin) through their sparse tensor cores, reached via cuSPARSELt or TensorRT "
    "(up to about 2x on the sparse GEMMs, FP16/INT8); other N:M ratios have no such kernels. "
    "CPUs, ONNX Runtime's CPU execution provider, older GPUs and typical NPUs run the model "
    "dense: the zeros then shrink only the compressed storage, not the latency."
)

#: Key of a device profile's ``accelerates`` mapping that says whether 2:4 runs faster there
#: (``nvidia-a100.yaml``: ``accelerates: {"2:4": true, ...}``).
ACCELERATES_KEY = "2:4"


@register_config
@dataclass(frozen=True)
class NMConfig(Config):
    """Keep the ``n`` largest-|w| weights of every ``m`` consecutive input weights.

    Attributes:
        n: non-zeros kept per group (1..m-1).
        m: group size along the input dimension.
        criterion: ``magnitude`` (|w|) or ``random`` (baseline).
        exclude: regular expressions of weight names left dense.
        skip_incompatible: leave layers whose input dimension is not a multiple of ``m``
            dense (True) or raise an error naming them (False).
        seed: seed of the ``random`` criterion.
    """

    kind = "nm"
    family = "pruning"
    sparsity_kind = "n:m"
    n: int = 2
    m: int = 4
    criterion: str = "magnitude"
    exclude: tuple[str, ...] = ()
    skip_incompatible: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("nm.m", self.m, 2, 64)
        check_range("nm.n", self.n, 1, self.m - 1)
        check_choice("nm.criterion", self.criterion, ("magnitude", "random"))

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m


def to_groups(w: torch.Tensor, m: int) -> torch.Tensor:
    """View a Linear/Conv weight as ``(rows, m)`` groups of consecutive input weights."""
    if w.dim() > 2:  # [out, in, kh, kw] -> [out, kh, kw, in]: groups run over input channels
        w = w.movedim(1, -1)
    return w.reshape(-1, m)


def from_groups(g: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`to_groups` for a weight of ``shape``."""
    if len(shape) > 2:
        permuted = (shape[0], *shape[2:], shape[1])
        return g.reshape(permuted).movedim(-1, 1)
    return g.reshape(shape)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask with the ``n`` highest ``scores`` of every group of ``m`` input weights."""
    groups = to_groups(scores, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
    return from_groups(keep, scores.shape)


def nm_compatible(w: torch.Tensor, m: int) -> bool:
    """True when the weight's input dimension is a multiple of ``m``."""
    return w.dim() >= 2 and w.shape[1] % m == 0


def is_nm_sparse(w: torch.Tensor, n: int, m: int) -> bool:
    """True when every group of ``m`` input weights holds at most ``n`` non-zeros."""
    if not nm_compatible(w, m):
        return False
    return bool(((to_groups(w, m) != 0).sum(dim=1) <= n).all())


def nm_layers(model: nn.Module, m: int, exclude=(), *, strict: bool = False) -> dict:
    """The weights N:M applies to; an incompatible one is an error when ``strict``."""
    out = {}
    for name, w in select_weights(model, exclude).items():
        if nm_compatible(w, m):
            out[name] = w
        elif strict:
            raise UserError(
                f"layer {name} has input dimension {w.shape[1]}, not a multiple of {m}, so it "
                f"cannot be {m}-grouped: exclude it or set skip_incompatible=true."
            )
    return out


def prune_nm(model: nn.Module, cfg: NMConfig) -> nn.Module:
    """Apply N:M sparsity in place; returns ``model``."""
    weights = nm_layers(model, cfg.m, cfg.exclude, strict=not cfg.skip_incompatible)
    gen = torch.Generator().manual_seed(cfg.seed)
    masks = {}
    for name, w in weights.items():
        scores = w.detach().abs() if cfg.criterion == "magnitude" else torch.rand(
            w.shape, generator=gen
        )
        masks[name] = nm_mask(scores, cfg.n, cfg.m)
    apply_masks(weights, masks)
    return model


@transform(NMConfig)
def _handle(cfg: NMConfig, model: nn.Module, _ctx) -> nn.Module:
    return prune_nm(model, cfg)
