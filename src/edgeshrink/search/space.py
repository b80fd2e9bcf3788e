"""The search space of one model on one device, as plain data, and recipes from its points.

A point chooses how channels go: per dependency group, the fraction removed (Torch-Pruning
groups, :mod:`edgeshrink.prune.layerwise`), or a fraction of the MACs removed by one uniform
ratio (the fixed plans' ``channels-*mac``), with the channel ranking (L1 or Taylor); per
layer, the fraction of zero weights (only on devices with sparse kernels: elsewhere zeros
buy neither speed nor stored bytes); the precision that ships (FP32 always, INT8 by
calibration, INT8 by quantization-aware training where the task has labelled training data,
and FP16 / INT4 where the device accelerates them); for calibrated INT8, which layers stay
FP32, the calibrator and bias correction; for QAT, its epochs and distillation weight; per
channel or per tensor weight scales for either INT8; the fine-tuning epochs after pruning
and the weight of distillation from the unpruned model. Each point is a recipe of ordinary configs, built and measured
exactly as a study candidate.

Example:
    >>> space, scans = build_space(task, load_profile("cortex-m7"))
    >>> recipe = recipe_of(space, seeds(space, scans)[0])
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeshrink.config import Config

__all__ = ["SearchSpace", "recipe_of", "suggest", "random_params", "walk", "precision_of",
           "int4_group", "RATIOS", "SPARSITIES", "MACS"]

RATIOS = (0.0, 0.25, 0.5, 0.75)  # channels removed per group
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9)  # zero weights per layer
MACS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # MACs removed by one ranking over the groups
INT4_GROUPS = (32, 16, 64, 128, 256)  # preferred first: ONNX Runtime's default block is 32


@dataclass
class SearchSpace:
    """Choices per dimension; every list holds the values a trial may take.

    Attributes:
        groups: dependency-group root layer -> channel ratios removed.
        macs: fractions of the MACs removed by MAC-targeted structured pruning (the plans'
            ``channels-*mac``: :class:`~edgeshrink.prune.StructuredConfig` bisects one
            uniform ratio to the target); empty: per-group widths only.
        importance: channel rankings for either kind of structured pruning.
        layers: weight name -> sparsities (empty where the device has no sparse kernels).
        quant_layers: module names that may each stay FP32 inside an INT8 model.
        precisions: ``fp32``, ``int8``, ``qat8``, ``fp16``, ``int4``: what ships (``qat8``:
            8/8-bit quantization-aware training, :class:`~edgeshrink.quant.QatConfig`, the
            quantization plan's ``qat-int8``; INT4 only for a model whose widths stay, see
            ``int4_group``).
        int4_group: the INT4 group size, one that divides the input size of every
            Linear layer it can (None: INT4 not offered).
        calibrators, per_channel, bias_correction: INT8 choices (per-tensor weight scales
            make a smaller file; per-channel ones keep more accuracy); ``per_channel``
            applies to QAT too.
        qat_epochs: QAT epochs (on top of any fine-tuning after pruning; empty: no QAT).
        qat_distill: QAT's weight of distillation from the model it starts from.
        epochs: fine-tuning epochs after pruning (``[0]`` without labelled training data).
        distill: weight of distillation from the unpruned model while fine-tuning.
        notes: why a dimension was left out or narrowed (device, sensitivity scan).
    """

    groups: dict[str, list[float]] = field(default_factory=dict)
    macs: list[float] = field(default_factory=list)
    importance: list[str] = field(default_factory=lambda: ["l1"])
    layers: dict[str, list[float]] = field(default_factory=dict)
    quant_layers: list[str] = field(default_factory=list)
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    int4_group: int | None = None
    calibrators: list[str] = field(default_factory=lambda: ["minmax"])
    per_channel: list[bool] = field(default_factory=lambda: [True, False])
    bias_correction: list[bool] = field(default_factory=lambda: [False])
    epochs: list[int] = field(default_factory=lambda: [0])
    distill: list[float] = field(default_factory=lambda: [0.0])
    qat_epochs: list[int] = field(default_factory=list)
    qat_distill: list[float] = field(default_factory=lambda: [0.5])
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def size(self) -> float:
        """Number of distinct points (an upper bound: conditional dimensions counted once)."""
        widths = float(np.prod([len(d) for d in self.groups.values()])) + len(self.macs)
        dims = [*self.layers.values(), self.precisions, self.calibrators, self.per_channel,
                self.bias_correction, self.epochs, self.distill]
        if self.groups or self.macs:
            dims.append(self.importance)
        if "qat8" in self.precisions:
            dims += [self.qat_epochs, self.qat_distill]
        n = widths * float(np.prod([len(d) for d in dims]))
        return n * 2.0 ** len(self.quant_layers) if "int8" in self.precisions else n

    def pruned_precisions(self) -> list[str]:
        """What may ship once widths changed: INT4's group size was chosen for the
        unpruned widths, which pruning changes (a MatMulNBits group must divide them)."""
        return [p for p in self.precisions if p != "int4"]


# ----------------------------------------------------------------- points and recipes


def walk(space: SearchSpace, pick) -> dict[str, Any]:
    """One point, asking ``pick(name, choices)`` for each dimension in order
    (define-by-run: a dimension is asked only when the earlier answers make it matter).

    The precision is named ``precision`` for a model whose widths stay and
    ``precision:pruned`` (no INT4) once widths changed, so that each name keeps one set of
    choices (Optuna's categorical distributions are fixed per name)."""
    params: dict[str, Any] = {}

    def ask(name: str, choices: list) -> Any:
        params[name] = pick(name, list(choices))
        return params[name]

    if space.macs and space.groups:
        ask("prune", ["groups", "macs"])
    if params.get("prune") == "macs":
        ask("macs", space.macs)
    else:
        for g, choices in space.groups.items():
            ask(f"w:{g}", choices)
    widths = params.get("prune") == "macs" or any(
        v > 0 for k, v in params.items() if k.startswith("w:"))
    if widths:
        ask("importance", space.importance)
    for n, choices in space.layers.items():
        ask(f"s:{n}", choices)
    precision = ask("precision:pruned", space.pruned_precisions()) if widths else \
        ask("precision", space.precisions)
    if precision == "int8":
        for n in space.quant_layers:
            ask(f"q:{n}", [True, False])
        ask("calibrator", space.calibrators)
        ask("per_channel", space.per_channel)
        ask("bias_correction", space.bias_correction)
    elif precision == "qat8":
        ask("qat_epochs", space.qat_epochs)
        ask("qat_distill", space.qat_distill)
        ask("per_channel", space.per_channel)
    pruned = widths or any(v > 0 for k, v in params.items() if k.startswith("s:"))
    if pruned and ask("epochs", space.epochs) > 0:
        ask("distill", space.distill)
    return params


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Ask an Optuna trial for one point of ``space`` (see :func:`walk`)."""
    return walk(space, trial.suggest_categorical)


def random_params(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A uniformly random point (the same conditional structure as :func:`suggest`)."""
    return walk(space, lambda _name, choices: choices[int(rng.integers(len(choices)))])


def precision_of(params: dict[str, Any]) -> str:
    return params.get("precision:pruned", params.get("precision", "fp32"))


def recipe_of(space: SearchSpace, params: dict[str, Any]) -> tuple[Config, ...]:
    """The recipe a point stands for: widths, layer sparsity, fine-tune, then the precision."""
    from edgeshrink.prune import GroupStructuredConfig, LayerSparsityConfig, StructuredConfig
    from edgeshrink.quant import Fp16Config, Int4WeightOnlyConfig, QatConfig, StaticInt8Config
    from edgeshrink.train import FinetuneConfig

    recipe: list[Config] = []
    importance = params.get("importance", "l1")
    if params.get("prune") == "macs":
        recipe.append(StructuredConfig(macs_reduction=float(params["macs"]),
                                       importance=importance))
    else:
        groups = [(g, float(params.get(f"w:{g}", 0.0))) for g in space.groups]
        groups = [(g, r) for g, r in groups if r > 0]
        if groups:
            recipe.append(GroupStructuredConfig(layers=tuple(g for g, _ in groups),
                                                ratios=tuple(r for _, r in groups),
                                                importance=importance))
    layers = [(n, float(params.get(f"s:{n}", 0.0))) for n in space.layers]
    layers = [(n, s) for n, s in layers if s > 0]
    if layers:
        recipe.append(LayerSparsityConfig(layers=tuple(n for n, _ in layers),
                                          sparsities=tuple(s for _, s in layers)))
    epochs = int(params.get("epochs", 0)) if recipe else 0
    if epochs:
        recipe.append(FinetuneConfig(epochs=epochs, distill=float(params.get("distill", 0.0))))
    precision = precision_of(params)
    if precision == "int8":
        keep = [n for n in space.quant_layers if params.get(f"q:{n}", True) is False]
        recipe.append(StaticInt8Config(
            calibrator=params.get("calibrator", "minmax"),
            per_channel=bool(params.get("per_channel", True)),
            bias_correction=bool(params.get("bias_correction", False)),
            exclude=tuple(f"^{re.escape(n)}$" for n in keep)))
    elif precision == "qat8":  # the quantization plan's qat-int8 with the chosen fields
        recipe.append(QatConfig(bits=8, act_bits=8, epochs=int(params.get("qat_epochs", 1)),
                                distill=float(params.get("qat_distill", 0.5)),
                                per_channel=bool(params.get("per_channel", True))))
    elif precision == "fp16":
        recipe.append(Fp16Config())
    elif precision == "int4":
        recipe.append(Int4WeightOnlyConfig(group_size=space.int4_group or 32))
    return tuple(recipe)


def int4_group(in_features: list[int]) -> int | None:
    """The INT4 group size that divides the most Linear input sizes (ties: the order of
    :data:`INT4_GROUPS`), or None when none divides any."""
    best = max(INT4_GROUPS, key=lambda g: sum(k % g == 0 for k in in_features))
    return best if any(k % best == 0 for k in in_features) else None
