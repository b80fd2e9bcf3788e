"""Pruning schedules that interleave pruning with training.

* :class:`IterativeConfig`: prune-and-retrain cycles (Han et al. 2015). Step ``k`` of ``K``
  reaches sparsity ``1 - (1 - s)^(k/K)``, i.e. it removes the same fraction of the weights
  still alive at every step (the schedule of Frankle & Carbin 2019), then retrains with the
  masks fixed.
* :class:`GradualConfig`: the automated gradual pruner of Zhu & Gupta 2017 ("To prune, or
  not to prune"): during fine-tuning, every ``frequency`` optimizer steps between
  ``start_epoch`` and ``end_epoch`` the sparsity is raised to
  ``s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (t_end - t_0))^3`` by magnitude, then training
  continues with the masks fixed until ``epochs``.

Both can distil from the unpruned model (``distill`` > 0, see :mod:`edgeshrink.train`).

Example:
    >>> model = prune_gradual(model, GradualConfig(final=0.9, epochs=4), task.train)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.prune.unstructured import (
    UnstructuredConfig,
    apply_masks,
    masks_by_scope,
    prune_unstructured,
    select_weights,
)
from edgeshrink.train import FinetuneConfig, _loss, fit
from edgeshrink.transforms import transform

__all__ = [
    "IterativeConfig",
    "GradualConfig",
    "iterative_sparsities",
    "cubic_sparsity",
    "prune_iterative",
    "prune_gradual",
]


@dataclass(frozen=True, kw_only=True)  # keyword-only: a subclass's own fields come first
class _TrainedPruning(Config):
    family = "pruning"
    sparsity_kind = "unstructured"
    lr: float = 1e-3
    batch_size: int = 64
    distill: float = 0.0
    temperature: float = 4.0
    scope: str = "global"
    exclude: tuple[str, ...] = ()

    def _check_training(self) -> None:
        check_range(f"{self.kind}.lr", self.lr, 0.0, 10.0)
        check_range(f"{self.kind}.batch_size", self.batch_size, 1, 1 << 20)
        check_range(f"{self.kind}.distill", self.distill, 0.0, 1.0)
        check_range(f"{self.kind}.temperature", self.temperature, 0.01, 100.0)
        check_choice(f"{self.kind}.scope", self.scope, ("global", "layer"))

    def finetune_config(self, epochs: int) -> FinetuneConfig:
        return FinetuneConfig(epochs=epochs, lr=self.lr, batch_size=self.batch_size,
                              distill=self.distill, temperature=self.temperature)


@register_config
@dataclass(frozen=True)
class IterativeConfig(_TrainedPruning):
    """Magnitude prune-and-retrain cycles up to ``sparsity``.

    Attributes:
        sparsity: final fraction of zero weights, in [0, 1).
        steps: prune-retrain cycles.
        epochs_per_step: retraining epochs after each pruning step.
        lr, batch_size, distill, temperature: the retraining (see ``FinetuneConfig``).
        scope: ``global`` or ``layer`` magnitude threshold.
        exclude: regular expressions of weight names left dense.
    """

    kind = "iterative"
    sparsity: float = 0.9
    steps: int = 3
    epochs_per_step: int = 1

    def __post_init__(self) -> None:
        check_range("iterative.sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_range("iterative.steps", self.steps, 1, 100)
        check_range("iterative.epochs_per_step", self.epochs_per_step, 0, 1000)
        self._check_training()


@register_config
@dataclass(frozen=True)
class GradualConfig(_TrainedPruning):
    """Zhu & Gupta's cubic gradual pruning during ``epochs`` of fine-tuning.

    Attributes:
        initial: sparsity at ``start_epoch``, in [0, 1).
        final: sparsity reached at ``end_epoch``, in [initial, 1).
        start_epoch: epoch (may be fractional) where pruning starts.
        end_epoch: epoch where ``final`` is reached; training then goes on to ``epochs``.
        epochs: total fine-tuning epochs (>= end_epoch).
        frequency: optimizer steps between two pruning updates.
        lr, batch_size, distill, temperature: the training (see ``FinetuneConfig``).
        scope: ``global`` or ``layer`` magnitude threshold.
        exclude: regular expressions of weight names left dense.
    """

    kind = "gradual"
    initial: float = 0.0
    final: float = 0.9
    start_epoch: float = 0.0
    end_epoch: float = 3.0
    epochs: int = 4
    frequency: int = 10

    def __post_init__(self) -> None:
        check_range("gradual.initial", self.initial, 0.0, 1.0, high_open=True)
        check_range("gradual.final", self.final, self.initial, 1.0, high_open=True)
        check_range("gradual.start_epoch", self.start_epoch, 0.0, 1000.0)
        check_range("gradual.end_epoch", self.end_epoch, self.start_epoch, float(self.epochs))
        check_range("gradual.epochs", self.epochs, 1, 1000)
        check_range("gradual.frequency", self.frequency, 1, 1 << 20)
        self._check_training()

    @property
    def sparsity(self) -> float:
        return self.final


# ---- pure schedule maths -----------------------------------------------------------------


def iterative_sparsities(sparsity: float, steps: int) -> list[float]:
    """Sparsity after each of ``steps`` cycles: the same fraction of survivors each time."""
    return [1.0 - (1.0 - sparsity) ** (k / steps) for k in range(1, steps + 1)]


def cubic_sparsity(step: int, initial: float, final: float, start: int, end: int) -> float:
    """Zhu & Gupta 2017, eq. (1): sparsity at optimizer ``step`` (``initial`` before ``start``)."""
    if step < start:
        return initial
    if step >= end or end == start:
        return final
    return final + (initial - final) * (1.0 - (step - start) / (end - start)) ** 3


# ---- algorithms --------------------------------------------------------------------------


def prune_iterative(model: nn.Module, cfg: IterativeConfig, data: Dataset | None, *,
                    teacher: nn.Module | None = None, seed: int = 0) -> nn.Module:
    """Prune to ``cfg.sparsity`` in ``cfg.steps`` magnitude steps, retraining after each."""
    if cfg.epochs_per_step and (data is None or len(data) == 0):
        raise UserError("iterative pruning retrains, but this task has no training data.")
    for k, s in enumerate(iterative_sparsities(cfg.sparsity, cfg.steps)):
        prune_unstructured(model, UnstructuredConfig(s, scope=cfg.scope, exclude=cfg.exclude))
        if cfg.epochs_per_step:
            fit(model, cfg.finetune_config(cfg.epochs_per_step), data, teacher=teacher,
                seed=seed + 1000 * k)
    return model


def _prune_to(weights: dict[str, torch.Tensor], sparsity: float, scope: str) -> dict:
    masks = masks_by_scope({n: w.detach().abs() for n, w in weights.items()}, sparsity, scope)
    apply_masks(weights, masks)
    return masks


def prune_gradual(model: nn.Module, cfg: GradualConfig, data: Dataset | None, *,
                  teacher: nn.Module | None = None, seed: int = 0) -> nn.Module:
    """Train ``cfg.epochs`` on ``data`` while raising sparsity on the cubic schedule."""
    if data is None or len(data) == 0:
        raise UserError("gradual pruning trains, but this task has no training data.")
    torch.manual_seed(seed)
    weights = select_weights(model, cfg.exclude)
    per_epoch = -(-len(data) // cfg.batch_size)
    start, end = round(cfg.start_epoch * per_epoch), round(cfg.end_epoch * per_epoch)
    ft = cfg.finetune_config(cfg.epochs)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if teacher is not None:
        teacher.eval()
    masks, step = {}, 0
    for epoch in range(cfg.epochs):
        model.train()
        for xs, y in data.batches(cfg.batch_size, shuffle=True, seed=seed + epoch):
            if (start <= step <= end and (step - start) % cfg.frequency == 0) or step == end:
                masks = _prune_to(weights, cubic_sparsity(step, cfg.initial, cfg.final, start, end),
                                  cfg.scope)
            with torch.no_grad():
                t_logits = teacher(*xs) if teacher is not None and cfg.distill > 0 else None
            loss = _loss(model(*xs), y.long(), t_logits, ft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            apply_masks(weights, masks)
            step += 1
    if step <= end:  # training ended before the schedule did: reach the final sparsity
        _prune_to(weights, cfg.final, cfg.scope)
    return model.eval()


def _needs_task(cfg: Config, ctx) -> None:
    if ctx is None or getattr(ctx, "task", None) is None:
        raise UserError(f"{cfg.kind} pruning trains, so it needs a task (pass a TransformContext).")


@transform(IterativeConfig)
def _handle_iterative(cfg: IterativeConfig, model: nn.Module, ctx) -> nn.Module:
    _needs_task(cfg, ctx)
    return prune_iterative(model, cfg, ctx.task.train, teacher=ctx.teacher, seed=ctx.seed)


@transform(GradualConfig)
def _handle_gradual(cfg: GradualConfig, model: nn.Module, ctx) -> nn.Module:
    _needs_task(cfg, ctx)
    return prune_gradual(model, cfg, ctx.task.train, teacher=ctx.teacher, seed=ctx.seed)
