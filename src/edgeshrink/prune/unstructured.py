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

import math
import re
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import CompressionWarning, UserError
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
        min_keep: fraction of its weights every layer keeps at least (global scope): one
            threshold over a BatchNorm net, whose conv weights have arbitrary scales,
            zeroed 94-98 % of some convs at 80 % and left 10 % accuracy. Layers held at
            the floor are named in a :class:`~edgeshrink.errors.CompressionWarning`.
    """

    kind = "unstructured"
    family = "pruning"
    sparsity_kind = "unstructured"
    sparsity: float = 0.5
    scope: str = "global"
    criterion: str = "magnitude"
    exclude: tuple[str, ...] = ()
    seed: int = 0
    min_keep: float = 0.05

    def __post_init__(self) -> None:
        check_range("sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_choice("scope", self.scope, ("global", "layer"))
        check_choice("criterion", self.criterion, ("magnitude", "random"))
        check_range("min_keep", self.min_keep, 0.0, 1.0)
        if self.scope == "global" and self.sparsity > 1.0 - self.min_keep + 1e-9:
            raise UserError(f"sparsity {self.sparsity} cannot be reached while every layer keeps "
                            f"min_keep={self.min_keep} of its weights; lower min_keep to at "
                            f"most {1.0 - self.sparsity:.3g} or the sparsity.")


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


def _global_masks(scores: dict[str, torch.Tensor], drop: int) -> dict[str, torch.Tensor]:
    """Keep-masks dropping the ``drop`` smallest scores over all tensors together."""
    names = list(scores)
    flat = torch.cat([scores[n].flatten() for n in names])
    keep = magnitude_mask(flat, drop / max(flat.numel(), 1))
    masks, start = {}, 0
    for n in names:
        size = scores[n].numel()
        masks[n] = keep[start : start + size].view_as(scores[n])
        start += size
    return masks


def floored_global_masks(
    scores: dict[str, torch.Tensor], sparsity: float, min_keep: float = 0.0
) -> dict[str, torch.Tensor]:
    """One global threshold, except that no tensor keeps less than ``min_keep`` of itself.

    Water-filling: a tensor the global cut would take below its floor keeps exactly its
    floor (its largest scores), and the cut is recomputed over the others for the weights
    still to remove, until no tensor is below its floor.
    """
    total = sum(s.numel() for s in scores.values())
    drop = int(round(sparsity * total))
    floored: dict[str, torch.Tensor] = {}
    while True:
        free = {n: s for n, s in scores.items() if n not in floored}
        taken = sum(m.numel() - int(m.sum()) for m in floored.values())
        masks = _global_masks(free, max(drop - taken, 0)) if free else {}
        low = [n for n, m in masks.items()
               if float(m.float().mean()) < min_keep - 0.5 / m.numel()]
        if not low:
            return {**masks, **floored}
        for n in low:
            floored[n] = magnitude_mask(scores[n], 1.0 - min_keep)


def masks_by_scope(
    scores: dict[str, torch.Tensor],
    sparsity: float | dict[str, float],
    scope: str = "global",
    *,
    min_keep: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Keep-masks from scores: one threshold over all tensors (``global``, with a per-tensor
    floor ``min_keep``) or per tensor.

    ``sparsity`` may be a mapping ``{name: fraction}`` (per-layer allocation; scope ignored).
    """
    if isinstance(sparsity, dict):
        return {n: magnitude_mask(s, sparsity.get(n, 0.0)) for n, s in scores.items()}
    if scope == "layer":
        return {n: magnitude_mask(s, sparsity) for n, s in scores.items()}
    return floored_global_masks(scores, sparsity, min_keep)


NEARLY_EMPTY = 0.05  # a layer keeping at most this fraction (or its floor) is named


def warn_nearly_empty(masks: dict[str, torch.Tensor], min_keep: float = 0.0) -> list[str]:
    """Warn (:class:`~edgeshrink.errors.CompressionWarning`) about the layers that keep at
    most ``max(min_keep, 5 %)`` of their weights; returns their names."""
    limit = max(min_keep, NEARLY_EMPTY)
    low = {n: int(m.sum()) / m.numel() for n, m in masks.items()
           if m.numel() > 1 and int(m.sum()) <= math.ceil(limit * m.numel())}
    if low:
        named = ", ".join(f"{n} keeps {100 * k:.1f} %" for n, k in low.items())
        warnings.warn(f"pruning nearly empties {len(low)} layer(s): {named}; raise min_keep or "
                      "exclude them if accuracy suffers.", CompressionWarning, stacklevel=3)
    return list(low)


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
    masks = masks_by_scope(scores, target, cfg.scope, min_keep=cfg.min_keep)
    if per_layer is None and cfg.sparsity > 0:
        warn_nearly_empty(masks, cfg.min_keep if cfg.scope == "global" else 0.0)
    apply_masks(weights, masks)
    return model


@transform(UnstructuredConfig)
def _handle(cfg: UnstructuredConfig, model: nn.Module, _ctx) -> nn.Module:
    return prune_unstructured(model, cfg)
