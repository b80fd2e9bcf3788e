"""Sensitivity scan: how the metric falls as each layer alone is pruned, and a per-layer
sparsity allocation for a global target derived from it.

The scan prunes one layer at a time by magnitude to each level and evaluates the model
(PyTorch, on the task's calibration split by default, so that the held-out eval set does
not steer the allocation), as in Han et al. 2015, Fig. 5. The allocation assumes drops add
up across layers (the usual first-order assumption) and picks per-layer sparsities that
minimise the predicted total drop subject to ``total zeros = target``: a greedy walk that
always takes the step with the smallest predicted drop per weight removed (optimal for
convex drop curves), then trims the last step to hit the target exactly.

``scan`` returns the schema ``RunRecord.sensitivity`` uses (the report draws a heat map)::

    {"sparsity": {"levels": [0.0, 0.5, ...], "layers": {name: [metric at each level]},
                  "metric": "accuracy", "split": "calibration"}}

Example:
    >>> table = scan(task.model, task)
    >>> per_layer = allocate(table, layer_sizes(task.model), target=0.8)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.measure.model_stats import torch_outputs
from edgeshrink.prune.unstructured import (
    UnstructuredConfig,
    magnitude_mask,
    prune_unstructured,
    select_weights,
)
from edgeshrink.transforms import transform

__all__ = [
    "SensitivityConfig",
    "DEFAULT_LEVELS",
    "scan",
    "allocate",
    "layer_sizes",
    "prune_by_sensitivity",
]

DEFAULT_LEVELS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@register_config
@dataclass(frozen=True)
class SensitivityConfig(Config):
    """Magnitude pruning with per-layer sparsities allocated from a sensitivity scan.

    Attributes:
        sparsity: global fraction of zero weights, in [0, 1).
        levels: sparsities the scan tries per layer (must include 0 and the largest
            level bounds every layer).
        split: data the scan evaluates on: ``calibration`` or ``train``.
        samples: samples of that split used by the scan.
        exclude: regular expressions of weight names left dense.
    """

    kind = "sensitivity"
    family = "pruning"
    sparsity_kind = "unstructured"
    sparsity: float = 0.8
    levels: tuple[float, ...] = DEFAULT_LEVELS
    split: str = "calibration"
    samples: int = 500
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range("sensitivity.sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        for level in self.levels:
            check_range("sensitivity.levels[]", level, 0.0, 1.0, high_open=True)
        if 0.0 not in self.levels or max(self.levels) < self.sparsity:
            raise UserError(
                "sensitivity.levels must contain 0.0 and a level >= sparsity "
                f"({self.sparsity}), got {list(self.levels)}."
            )
        check_choice("sensitivity.split", self.split, ("calibration", "train"))
        check_range("sensitivity.samples", self.samples, 1, 1 << 24)


def layer_sizes(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, int]:
    """Number of weights of each prunable layer, by weight name."""
    return {n: w.numel() for n, w in select_weights(model, exclude).items()}


def _outputs(model: nn.Module, data: Dataset, batch_size: int = 256) -> np.ndarray:
    return torch_outputs(model, data, batch_size).astype(np.float64)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _divergence(ref: np.ndarray, out: np.ndarray) -> float:
    """KL(dense || pruned) of softmax outputs for classifiers, else relative squared error."""
    if ref.ndim == 2 and ref.shape[1] > 1:
        lp, lq = _log_softmax(ref), _log_softmax(out)
        return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))
    return float(np.sum((ref - out) ** 2) / max(np.sum(ref**2), 1e-30))


def scan(
    model: nn.Module, task, *, levels: tuple[float, ...] = DEFAULT_LEVELS,
    data: Dataset | None = None, exclude: tuple[str, ...] = (), split: str | None = None,
) -> dict:
    """Metric of ``model`` with each layer alone magnitude-pruned to each level."""
    data = data if data is not None else task.calibration
    model = copy.deepcopy(model).eval()
    weights = select_weights(model, exclude)
    ref = _outputs(model, data)
    base = task.metric(ref, data.targets)
    layers, divergence = {}, {}
    for name, w in weights.items():
        original = w.detach().clone()
        row, div = [], []
        for level in levels:
            with torch.no_grad():
                w.copy_(original * magnitude_mask(original.abs(), level))
            out = ref if level == 0.0 else _outputs(model, data)
            row.append(base if level == 0.0 else task.metric(out, data.targets))
            div.append(_divergence(ref, out))
        with torch.no_grad():
            w.copy_(original)
        layers[name], divergence[name] = row, div
    split = split or ("calibration" if data is task.calibration else "custom")
    return {"sparsity": {"levels": list(levels), "layers": layers, "metric": task.metric.name,
                         "higher_is_better": task.metric.higher_is_better, "split": split,
                         "divergence": divergence}}


def _drops(values: list[float], higher_is_better: bool) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    drop = (v[0] - v) if higher_is_better else (v - v[0])
    return np.maximum.accumulate(np.maximum(drop, 0.0))  # more pruning never predicted to help


def allocate(
    table: dict, sizes: dict[str, int], target: float, *, by: str = "divergence"
) -> dict[str, float]:
    """Per-layer sparsities with ``sum(s_l * n_l) == target * sum(n_l)``, minimising the
    predicted total damage (greedy on damage per weight removed, last step interpolated).

    ``by="divergence"`` (when the scan has it) predicts damage by the output divergence
    from the dense model, which is smooth and adds up across layers for small changes;
    ``by="metric"`` uses the metric's drop, which saturates and is noisy on small sets.
    """
    check_range("target sparsity", target, 0.0, 1.0, high_open=True)
    check_choice("allocate.by", by, ("divergence", "metric"))
    scan_ = table["sparsity"]
    levels = np.asarray(scan_["levels"], dtype=float)
    names = [n for n in sizes if n in scan_["layers"]]
    if by == "divergence" and "divergence" in scan_:
        drops = {n: _drops(scan_["divergence"][n], False) for n in names}
    else:
        higher = scan_.get("higher_is_better", True)
        drops = {n: _drops(scan_["layers"][n], higher) for n in names}
    need = target * sum(sizes[n] for n in names)
    if need > levels.max() * sum(sizes[n] for n in names) + 1e-9:
        raise UserError(f"target sparsity {target} is above the largest scanned level.")
    pos = dict.fromkeys(names, 0)
    pruned = 0.0
    while pruned < need - 1e-9:
        best, best_cost = None, float("inf")
        for n in names:
            i = pos[n]
            if i + 1 < len(levels):
                cost = (drops[n][i + 1] - drops[n][i]) / ((levels[i + 1] - levels[i]) * sizes[n])
                if cost < best_cost - 1e-15:
                    best, best_cost = n, cost
        i = pos[best]
        gain = (levels[i + 1] - levels[i]) * sizes[best]
        if pruned + gain > need:  # partial last step: land exactly on the target
            frac = (need - pruned) / gain
            return {**{n: float(levels[pos[n]]) for n in names},
                    best: float(levels[i] + frac * (levels[i + 1] - levels[i]))}
        pruned += gain
        pos[best] = i + 1
    return {n: float(levels[pos[n]]) for n in names}


def prune_by_sensitivity(model: nn.Module, cfg: SensitivityConfig, task) -> nn.Module:
    """Scan ``model`` on ``task``, allocate per-layer sparsities, magnitude-prune in place."""
    data = task.calibration if cfg.split == "calibration" else task.train
    if data is None or len(data) == 0:
        raise UserError(f"the sensitivity scan needs the task's {cfg.split} split; it is empty.")
    table = scan(model, task, levels=tuple(sorted(set(cfg.levels))),
                 data=data.head(min(cfg.samples, len(data))), exclude=cfg.exclude,
                 split=cfg.split)
    per_layer = allocate(table, layer_sizes(model, cfg.exclude), cfg.sparsity)
    return prune_unstructured(model, UnstructuredConfig(cfg.sparsity, exclude=cfg.exclude),
                              per_layer=per_layer)


@transform(SensitivityConfig)
def _handle(cfg: SensitivityConfig, model: nn.Module, ctx) -> nn.Module:
    if ctx is None or getattr(ctx, "task", None) is None:
        raise UserError("sensitivity pruning needs a task to scan (pass a TransformContext).")
    return prune_by_sensitivity(model, cfg, ctx.task)
