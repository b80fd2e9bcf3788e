"""Per-layer and per-group choices as plain configs: what an automated search decides.

:class:`GroupStructuredConfig` removes a *different* fraction of channels from each
dependency group (the channels that must go together: a conv, its BatchNorm, the next
layer's inputs, every layer tied to it by a residual add), found by Torch-Pruning's
dependency graph (Fang et al. 2023, "DepGraph") and named by the group's root layer.
:class:`LayerSparsityConfig` zeroes a different fraction of each layer's weights by
magnitude. Both name layers by their module / weight names, so a recipe stays plain data.

Example:
    >>> groups = prunable_groups(model, task.example_inputs())   # ['features.0', ...]
    >>> cfg = GroupStructuredConfig(layers=("features.0",), ratios=(0.5,))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.errors import UserError
from edgeshrink.prune.importance import CRITERIA, SaliencyImportance, weight_saliency
from edgeshrink.prune.structured import (
    _check_layers,
    _nearest_round_pruner,
    _output_layer,
)
from edgeshrink.prune.unstructured import UnstructuredConfig, prune_unstructured, select_weights
from edgeshrink.transforms import transform

__all__ = ["GroupStructuredConfig", "LayerSparsityConfig", "prunable_groups", "prune_groups"]

_ROOTS = (nn.modules.conv._ConvNd, nn.Linear)


def _pairs(kind: str, layers: tuple, values: tuple, high: float) -> None:
    if len(layers) != len(values):
        raise UserError(f"{kind}: layers and its values must have the same length "
                        f"({len(layers)} vs {len(values)}).")
    if len(set(layers)) != len(layers):
        raise UserError(f"{kind}: a layer is named twice in layers.")
    for v in values:
        check_range(f"{kind} value", v, 0.0, high, high_open=True)


@register_config
@dataclass(frozen=True)
class GroupStructuredConfig(Config):
    """Remove ``ratios[i]`` of the channels of the dependency group rooted at ``layers[i]``.

    Attributes:
        layers: root layer names of the groups (from :func:`prunable_groups`).
        ratios: fraction of each group's channels removed, in [0, 0.9).
        importance: channel ranking: ``l1``, ``l2``, ``taylor`` or ``hessian``.
        round_to: keep channel counts multiples of this (see ``StructuredConfig``).
    """

    kind = "structured_groups"
    family = "pruning"
    sparsity_kind = "structured"
    layers: tuple[str, ...] = ()
    ratios: tuple[float, ...] = ()
    importance: str = "l1"
    round_to: int = 1

    def __post_init__(self) -> None:
        _pairs("structured_groups", self.layers, self.ratios, 0.9)
        check_choice("importance", self.importance, CRITERIA)
        check_range("round_to", self.round_to, 1, 1024)


@register_config
@dataclass(frozen=True)
class LayerSparsityConfig(Config):
    """Zero ``sparsities[i]`` of the weights of ``layers[i]`` (weight names) by magnitude."""

    kind = "layer_sparsity"
    family = "pruning"
    sparsity_kind = "unstructured"
    layers: tuple[str, ...] = ()
    sparsities: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _pairs("layer_sparsity", self.layers, self.sparsities, 1.0)


def _dependency_groups(model: nn.Module, example: tuple[torch.Tensor, ...]):
    import torch_pruning as tp

    output = _output_layer(model, example)
    ignored = [m for n, m in model.named_modules() if n == output]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        return list(graph.get_all_groups(ignored_layers=ignored, root_module_types=_ROOTS))


def prunable_groups(model: nn.Module, example: tuple[torch.Tensor, ...]) -> list[str]:
    """Root layer names of the dependency groups whose channels can be removed (the output
    layer's group excluded), in the order Torch-Pruning visits them."""
    _check_layers(model)
    names = {m: n for n, m in model.named_modules()}
    model.eval()
    return [names[g[0].dep.target.module] for g in _dependency_groups(model, tuple(example))]


def prune_groups(model: nn.Module, cfg: GroupStructuredConfig,
                 example: tuple[torch.Tensor, ...], *, data=None) -> nn.Module:
    """Remove each named group's share of channels from ``model`` in place (eval mode)."""
    _check_layers(model)
    model.eval()
    example = tuple(example)
    modules = dict(model.named_modules())
    unknown = [n for n in cfg.layers if n not in modules]
    if unknown:
        raise UserError(f"structured_groups: no layer named {unknown[0]!r} in this model.")
    ratios = {modules[n]: r for n, r in zip(cfg.layers, cfg.ratios, strict=True) if r > 0}
    if not ratios:
        return model
    saliency = weight_saliency(model, cfg.importance, data)
    importance = SaliencyImportance(
        {p: saliency[n] for n, p in model.named_parameters() if n in saliency})
    output = modules[_output_layer(model, example)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = _nearest_round_pruner()(
            model, example, importance=importance, pruning_ratio=0.0,
            pruning_ratio_dict=ratios, ignored_layers=[output],
            round_to=cfg.round_to if cfg.round_to > 1 else None)
        pruner.step()
    return model.eval()


@transform(GroupStructuredConfig)
def _handle_groups(cfg: GroupStructuredConfig, model: nn.Module, ctx) -> nn.Module:
    if ctx is None or getattr(ctx, "task", None) is None:
        raise UserError("structured_groups needs example inputs: give a task context.")
    data = ctx.task.calibration if cfg.importance in ("taylor", "hessian") else None
    return prune_groups(model, cfg, ctx.task.example_inputs(), data=data)


@transform(LayerSparsityConfig)
def _handle_sparsity(cfg: LayerSparsityConfig, model: nn.Module, _ctx) -> nn.Module:
    weights = select_weights(model)
    unknown = [n for n in cfg.layers if n not in weights]
    if unknown:
        raise UserError(f"layer_sparsity: no prunable weight named {unknown[0]!r}; "
                        f"weights look like {', '.join(list(weights)[:4])}.")
    per_layer = dict(zip(cfg.layers, cfg.sparsities, strict=True))
    return prune_unstructured(model, UnstructuredConfig(0.0), per_layer=per_layer)
