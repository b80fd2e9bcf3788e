"""The search space of one model on one device, as plain data, and recipes from its points.

A point chooses, per dependency group, the fraction of channels removed (Torch-Pruning
groups, :mod:`edgeshrink.prune.layerwise`); per layer, the fraction of zero weights (only
on devices with sparse kernels: elsewhere zeros buy neither speed nor stored bytes); the
precision that ships (FP32 always, INT8, and FP16 / INT4 where the device accelerates
them); for INT8, which layers stay FP32, the calibrator and bias correction; and the
fine-tuning epochs after pruning. Each point is a recipe of ordinary configs, built and
measured exactly as a study candidate.

Example:
    >>> space = build_space(task, load_profile("cortex-m7"))
    >>> recipe = recipe_of(space, seeds(space)[0])
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeshrink.config import Config

__all__ = ["SearchSpace", "recipe_of", "suggest", "random_params", "RATIOS", "SPARSITIES"]

RATIOS = (0.0, 0.25, 0.5, 0.75)  # channels removed per group
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9)  # zero weights per layer


@dataclass
class SearchSpace:
    """Choices per dimension; every list holds the values a trial may take.

    Attributes:
        groups: dependency-group root layer -> channel ratios removed.
        layers: weight name -> sparsities (empty where the device has no sparse kernels).
        quant_layers: module names that may each stay FP32 inside an INT8 model.
        precisions: ``fp32``, ``int8``, ``fp16``, ``int4``: what ships.
        calibrators, per_channel, bias_correction: INT8 choices (per-tensor weight scales
            make a smaller file; per-channel ones keep more accuracy).
        epochs: fine-tuning epochs after pruning (``[0]`` without labelled training data).
        notes: why a dimension was left out or narrowed (device, sensitivity scan).
    """

    groups: dict[str, list[float]] = field(default_factory=dict)
    layers: dict[str, list[float]] = field(default_factory=dict)
    quant_layers: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    calibrators: list[str] = field(default_factory=lambda: ["minmax"])
    per_channel: list[bool] = field(default_factory=lambda: [True, False])
    bias_correction: list[bool] = field(default_factory=lambda: [False])
    epochs: list[int] = field(default_factory=lambda: [0])
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def size(self) -> float:
        """Number of distinct points (an upper bound: conditional dimensions counted once)."""
        dims = [*self.groups.values(), *self.layers.values(), self.precisions,
                self.calibrators, self.per_channel, self.bias_correction, self.epochs]
        n = float(np.prod([len(d) for d in dims]))
        return n * 2.0 ** len(self.quant_layers) if "int8" in self.precisions else n


# ----------------------------------------------------------------- points and recipes


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Ask an Optuna trial for one point of ``space`` (define-by-run: INT8 choices only
    when INT8 ships, epochs only when something was pruned)."""
    params: dict[str, Any] = {}
    for g, choices in space.groups.items():
        params[f"w:{g}"] = trial.suggest_categorical(f"w:{g}", choices)
    for n, choices in space.layers.items():
        params[f"s:{n}"] = trial.suggest_categorical(f"s:{n}", choices)
    params["precision"] = trial.suggest_categorical("precision", space.precisions)
    if params["precision"] == "int8":
        for n in space.quant_layers:
            params[f"q:{n}"] = trial.suggest_categorical(f"q:{n}", [True, False])
        params["calibrator"] = trial.suggest_categorical("calibrator", space.calibrators)
        params["per_channel"] = trial.suggest_categorical("per_channel", space.per_channel)
        params["bias_correction"] = trial.suggest_categorical("bias_correction",
                                                              space.bias_correction)
    if _pruned(params):
        params["epochs"] = trial.suggest_categorical("epochs", space.epochs)
    return params


def _pruned(params: dict[str, Any]) -> bool:
    return any(v > 0 for k, v in params.items() if k[:2] in ("w:", "s:"))


def random_params(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A uniformly random point (the same conditional structure as :func:`suggest`)."""

    def pick(choices):
        return choices[int(rng.integers(len(choices)))]

    params: dict[str, Any] = {f"w:{g}": pick(c) for g, c in space.groups.items()}
    params.update({f"s:{n}": pick(c) for n, c in space.layers.items()})
    params["precision"] = pick(space.precisions)
    if params["precision"] == "int8":
        params.update({f"q:{n}": bool(rng.integers(2)) for n in space.quant_layers})
        params["calibrator"] = pick(space.calibrators)
        params["per_channel"] = pick(space.per_channel)
        params["bias_correction"] = pick(space.bias_correction)
    if _pruned(params):
        params["epochs"] = pick(space.epochs)
    return params


def recipe_of(space: SearchSpace, params: dict[str, Any]) -> tuple[Config, ...]:
    """The recipe a point stands for: groups, layer sparsity, fine-tune, then the precision."""
    from edgeshrink.prune import GroupStructuredConfig, LayerSparsityConfig
    from edgeshrink.quant import Fp16Config, Int4WeightOnlyConfig, StaticInt8Config
    from edgeshrink.train import FinetuneConfig

    recipe: list[Config] = []
    groups = [(g, params.get(f"w:{g}", 0.0)) for g in space.groups]
    groups = [(g, float(r)) for g, r in groups if r > 0]
    if groups:
        recipe.append(GroupStructuredConfig(layers=tuple(g for g, _ in groups),
                                            ratios=tuple(r for _, r in groups)))
    layers = [(n, float(params.get(f"s:{n}", 0.0))) for n in space.layers]
    layers = [(n, s) for n, s in layers if s > 0]
    if layers:
        recipe.append(LayerSparsityConfig(layers=tuple(n for n, _ in layers),
                                          sparsities=tuple(s for _, s in layers)))
    epochs = int(params.get("epochs", 0)) if recipe else 0
    if epochs:
        recipe.append(FinetuneConfig(epochs=epochs))
    precision = params.get("precision", "fp32")
    if precision == "int8":
        keep = [n for n in space.quant_layers if params.get(f"q:{n}", True) is False]
        recipe.append(StaticInt8Config(
            calibrator=params.get("calibrator", "minmax"),
            per_channel=bool(params.get("per_channel", True)),
            bias_correction=bool(params.get("bias_correction", False)),
            exclude=tuple(f"^{re.escape(n)}$" for n in keep)))
    elif precision == "fp16":
        recipe.append(Fp16Config())
    elif precision == "int4":
        recipe.append(Int4WeightOnlyConfig())
    return tuple(recipe)
