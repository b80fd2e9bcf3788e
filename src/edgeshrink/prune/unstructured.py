"""Unstructured pruning: zero individual weights by magnitude (Han et al. 2015) or at random.

Three layers, as everywhere in edgeshrink: ``magnitude_mask`` / ``masks_by_scope`` are pure
tensor maths, ``apply_masks`` is the surgery, ``prune_unstructured`` decides the thresholds.
Unstructured zeros shrink *storage* (deflate / sparse encoding); dense runtimes run them
at the same speed.

Example:
    >>> model = prune_unstructured(model, UnstructuredConfig(sparsity=0.9, scope="global"))
    >>> round(weight_sparsity(model), 2)
    0.9
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.measure.model_stats import prunable_weights
from edgeshrink.transforms import transform

__all__ = [
    "UnstructuredConfig",
    "magnitude_mask",
    "masks_by_scope",
    "apply_masks",
    "select_weights",
    "prune_unstructured",
]


@register_config
@dataclass(frozen=True)
class UnstructuredConfig(Config):
    """Zero the ``sparsity`` fraction of Conv/Linear weights.

    Attributes:
        sparsity: fraction of weights set to zero, in [0, 1).
        scope: ``global`` (one threshold over all layers, Han et al.) or ``layer``
            (the same fraction in every layer).
        criterion: ``magnitude`` or ``random`` (the baseline that shows what the
            criterion is worth).
        exclude: regular expressions of layer weight names left dense.
        seed: seed of the ``random`` criterion.
    """

    kind = "unstructured"
    family = "pruning"
    sparsity_kind = "unstructured"
    sparsity: float = 0.5
    scope: str = "global"
    criterion: str = "magnitude"
    exclude: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_choice("scope", self.scope, ("global", "layer"))
        check_choice("criterion", self.criterion, ("magnitude", "random"))


def magnitude_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask zeroing the ``sparsity`` fraction of the smallest ``scores``."""
    k = int(round(sparsity * scores.numel()))
    if k == 0:
        return torch.ones_like(scores, dtype=torch.bool)
    flat = scores.flatten()
    drop = torch.topk(flat, k, largest=False).indices
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[drop] = False
    return keep.view_as(scores)


def masks_by_scope(
    scores: dict[str, torch.Tensor], sparsity: float | dict[str, float], scope: str = "global"
) -> dict[str, torch.Tensor]:
    """Keep-masks from scores: one threshold over all tensors (``global``) or per tensor.

    ``sparsity`` may be a mapping ``{name: fraction}`` (per-layer allocation; scope ignored).
    """
    if isinstance(sparsity, dict):
        return {n: magnitude_mask(s, sparsity.get(n, 0.0)) for n, s in scores.items()}
    if scope == "layer":
        return {n: magnitude_mask(s, sparsity) for n, s in scores.items()}
    names = list(scores)
    flat = torch.cat([scores[n].flatten() for n in names])
    keep = magnitude_mask(flat, sparsity)
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start : start + size].view_as(scores[n])
        start += size
    return masks


def select_weights(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Conv/Linear weights by parameter name, minus those matching an ``exclude`` regex."""
    return {
        n: w for n, w in prunable_weights(model).items()
        if not any(re.fullmatch(p, n) for p in exclude)
    }


def _scores(weights: dict[str, torch.Tensor], cfg: UnstructuredConfig) -> dict[str, torch.Tensor]:
    if cfg.criterion == "magnitude":
        return {n: w.detach().abs() for n, w in weights.items()}
    gen = torch.Generator().manual_seed(cfg.seed)
    return {n: torch.rand(w.shape, generator=gen) for n, w in weights.items()}


def apply_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Multiply each weight by its keep-mask, in place."""
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask.to(weights[name].dtype))


def prune_unstructured(
    model: nn.Module, cfg: UnstructuredConfig, *, per_layer: dict[str, float] | None = None
) -> nn.Module:
    """Zero weights in place; returns ``model``.

    ``per_layer`` overrides ``cfg.sparsity`` with one fraction per weight name (layers not
    named stay dense), e.g. an allocation from :mod:`edgeshrink.prune.sensitivity`.
    """
    weights = select_weights(model, cfg.exclude)
    if not weights:
        return model
    scores = _scores(weights, cfg)
    target = per_layer if per_layer is not None else cfg.sparsity
    apply_masks(weights, masks_by_scope(scores, target, cfg.scope))
    return model


@transform(UnstructuredConfig)
def _handle(cfg: UnstructuredConfig, model: nn.Module, _ctx) -> nn.Module:
    return prune_unstructured(model, cfg)
