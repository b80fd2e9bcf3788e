"""Fine-tuning: retraining after pruning, with optional knowledge distillation.

``finetune`` keeps weights that are exactly zero at zero (the masks of a pruned model
survive retraining, as in Han et al. 2015), and can distil from the unpruned model
(Hinton et al. 2015: soft targets at temperature T, loss scaled by T^2, plus hard labels).

Example:
    >>> model = finetune(model, FinetuneConfig(epochs=2), task.train)
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeshrink.config import Config, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.transforms import transform

__all__ = ["FinetuneConfig", "finetune", "fit", "zero_masks"]


@register_config
@dataclass(frozen=True)
class FinetuneConfig(Config):
    """Retrain for ``epochs`` with Adam.

    Attributes:
        epochs: passes over the training split.
        lr: Adam learning rate.
        batch_size: samples per step.
        distill: weight of the distillation loss against the original model (0 = labels only,
            1 = soft targets only).
        temperature: softmax temperature of the distillation targets.
        keep_zeros: keep exactly-zero weights at zero (pruning masks survive).
    """

    kind = "finetune"
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    distill: float = 0.0
    temperature: float = 4.0
    keep_zeros: bool = True

    def __post_init__(self) -> None:
        check_range("finetune.epochs", self.epochs, 0, 1000)
        check_range("finetune.lr", self.lr, 0.0, 10.0)
        check_range("finetune.batch_size", self.batch_size, 1, 1 << 20)
        check_range("finetune.distill", self.distill, 0.0, 1.0)
        check_range("finetune.temperature", self.temperature, 0.01, 100.0)


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Masks (1 where non-zero) of the weight tensors that contain exact zeros."""
    masks = {}
    for name, p in model.named_parameters():
        if p.dim() > 1 and bool((p == 0).any()):
            masks[name] = (p != 0).to(p.dtype)
    return masks


def _soft_loss(logits, targets, t: float):
    """Hinton et al. 2015: KL to the targets' softmax at temperature ``t``, scaled by t^2."""
    return F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(targets / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)  # fmt: skip


def _loss(logits, targets, teacher_logits, cfg: FinetuneConfig):
    if targets.is_floating_point() and targets.shape == logits.shape:
        # An unlabelled split whose targets are the original model's logits (the pretrained
        # zoo tasks): distillation from them is the only signal there is.
        return _soft_loss(logits, targets, cfg.temperature)
    hard = F.cross_entropy(logits, targets.long())
    if teacher_logits is None or cfg.distill == 0.0:
        return hard
    soft = _soft_loss(logits, teacher_logits, cfg.temperature)
    return cfg.distill * soft + (1.0 - cfg.distill) * hard


def fit(
    model: nn.Module,
    cfg: FinetuneConfig,
    data: Dataset,
    *,
    teacher: nn.Module | None = None,
    seed: int = 0,
    on_epoch=None,
    loss_fn=None,
) -> nn.Module:
    """Train ``model`` in place on ``data`` (labels as ``targets``) and return it in eval mode.

    ``loss_fn(outputs, targets)``, when given (a task's own loss, e.g. MSE for regression),
    replaces the default cross-entropy / distillation loss.
    """
    if data is None or len(data) == 0:
        raise UserError("this task has no training data, so it cannot be fine-tuned.")
    torch.manual_seed(seed)
    masks = zero_masks(model) if cfg.keep_zeros else {}
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if teacher is not None:
        teacher.eval()
    for epoch in range(cfg.epochs):
        model.train()
        for xs, y in data.batches(cfg.batch_size, shuffle=True, seed=seed + epoch):
            if loss_fn is not None:
                loss = loss_fn(model(*xs), y)
            else:
                with torch.no_grad():
                    t_logits = teacher(*xs) if teacher is not None and cfg.distill > 0 else None
                loss = _loss(model(*xs), y, t_logits, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].mul_(mask)
        if on_epoch is not None:
            on_epoch(epoch)
    return model.eval()


def finetune(
    model: nn.Module, cfg: FinetuneConfig, data: Dataset, *, teacher: nn.Module | None = None,
    loss_fn=None,
) -> nn.Module:
    """Public verb: a fine-tuned copy of a (pruned) model; see :class:`FinetuneConfig` and
    :func:`fit` (``loss_fn`` replaces its default loss).

    ``model`` itself is not changed, so the same object can be passed as ``teacher`` of a
    later fine-tuning or be a study's baseline.
    """
    return fit(copy.deepcopy(model), dataclasses.replace(cfg), data, teacher=teacher,
               loss_fn=loss_fn)


@transform(FinetuneConfig)
def _handle(cfg: FinetuneConfig, model: nn.Module, ctx) -> nn.Module:
    """A recipe step: retrain on the task's training split, distilling from ``ctx.teacher``;
    each epoch is reported through ``ctx.on_step`` (the study's progress and log)."""
    return fit(model, cfg, ctx.task.train, teacher=ctx.teacher, seed=ctx.seed,
               on_epoch=epoch_reporter(ctx, "finetune", cfg.epochs),
               loss_fn=getattr(ctx.task, "loss_fn", None))


def epoch_reporter(ctx, label: str, epochs: int):
    """``on_epoch`` for :func:`fit` that tells ``ctx.on_step`` "LABEL epoch k/N" (None when
    nobody listens)."""
    step = getattr(ctx, "on_step", None)
    return (lambda e: step(f"{label} epoch {e + 1}/{epochs}")) if step else None
