"""Channel importance for structured pruning: L1, L2, first-order Taylor, diagonal Hessian.

Every criterion is an element-wise *saliency* of a weight tensor, summed over the weights
a channel owns in every layer of its dependency group:

* ``l1``: ``|w|`` (Li et al. 2017, "Pruning Filters for Efficient ConvNets").
* ``l2``: ``w^2``.
* ``taylor``: ``E_batch |w * dL/dw|``, the first-order change of the loss when ``w`` is
  removed (Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning").
* ``hessian``: ``0.5 * F_ii * w^2`` with ``F_ii = E_sample (dL/dw)^2``, the diagonal
  empirical Fisher standing in for the Hessian: Optimal Brain Damage (LeCun et al. 1990).

The maths is :func:`elementwise_saliency` (tensors only); :func:`gradient_statistics`
collects the gradients on a model in eval mode; :class:`SaliencyImportance` is the
``importance(group) -> scores`` callable that Torch-Pruning's pruner ranks channels with.

Example:
    >>> sal = weight_saliency(model, "taylor", task.calibration)
    >>> imp = SaliencyImportance({p: sal[n] for n, p in model.named_parameters() if n in sal})
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError

__all__ = [
    "CRITERIA",
    "elementwise_saliency",
    "gradient_statistics",
    "weight_saliency",
    "SaliencyImportance",
]

CRITERIA = ("l1", "l2", "taylor", "hessian")
GRADIENT_CRITERIA = ("taylor", "hessian")
_SCORED = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm)


def elementwise_saliency(
    w: torch.Tensor,
    criterion: str,
    *,
    abs_wg: torch.Tensor | None = None,
    grad_sq: torch.Tensor | None = None,
) -> torch.Tensor:
    """Saliency of each weight: ``abs_wg`` = E|w*g| (taylor), ``grad_sq`` = E[g^2] (hessian)."""
    if criterion == "l1":
        return w.abs()
    if criterion == "l2":
        return w.pow(2)
    if criterion == "taylor":
        return abs_wg
    if criterion == "hessian":
        return 0.5 * grad_sq * w.pow(2)
    raise UserError(f"importance must be one of {', '.join(CRITERIA)}; got {criterion!r}.")


def _scored_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    return {
        (f"{name}.weight" if name else "weight"): m.weight
        for name, m in model.named_modules()
        if isinstance(m, _SCORED) and isinstance(getattr(m, "weight", None), nn.Parameter)
    }


def _loss(model: nn.Module, xs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    out = model(*xs)
    out = out[0] if isinstance(out, tuple | list) else out
    # Unlabelled tasks carry reference logits as targets: use their arg-max class.
    labels = y.argmax(1) if y.dim() > 1 else y.long()
    return F.cross_entropy(out, labels, reduction="sum")


def gradient_statistics(
    model: nn.Module, data: Dataset, *, samples: int = 128, batch_size: int = 16
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(E_batch |w*g|, E_sample g^2)`` per Conv/Linear/norm weight, by parameter name.

    Gradients are taken in eval mode (BatchNorm uses its running statistics) so the
    statistics describe the trained model as deployed. ``g^2`` is per sample (micro-batches
    of one), as the empirical Fisher needs; ``|w*g|`` is per mini-batch of ``batch_size``.
    """
    if data is None or len(data) == 0:
        raise UserError("taylor/hessian importance needs calibration data; this task has none.")
    data = data.head(min(samples, len(data)))
    weights = _scored_weights(model)
    abs_wg = {n: torch.zeros_like(w) for n, w in weights.items()}
    grad_sq = {n: torch.zeros_like(w) for n, w in weights.items()}
    was_training = model.training
    model.eval()
    try:
        for size, acc, fn in ((batch_size, abs_wg, "wg"), (1, grad_sq, "g2")):
            count = 0
            for xs, y in data.batches(size):
                model.zero_grad(set_to_none=True)
                (_loss(model, xs, y) / len(y)).backward()
                count += 1
                with torch.no_grad():
                    for n, w in weights.items():
                        g = w.grad if w.grad is not None else torch.zeros_like(w)
                        acc[n] += (w * g).abs() if fn == "wg" else g.pow(2)
            for n in acc:
                acc[n] /= max(count, 1)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return abs_wg, grad_sq


def weight_saliency(
    model: nn.Module, criterion: str, data: Dataset | None = None, *, samples: int = 128
) -> dict[str, torch.Tensor]:
    """Element-wise saliency of every Conv/Linear/norm weight, by parameter name."""
    weights = _scored_weights(model)
    if criterion not in GRADIENT_CRITERIA:
        return {n: elementwise_saliency(w.detach(), criterion) for n, w in weights.items()}
    abs_wg, grad_sq = gradient_statistics(model, data, samples=samples)
    return {
        n: elementwise_saliency(w.detach(), criterion, abs_wg=abs_wg[n], grad_sq=grad_sq[n])
        for n, w in weights.items()
    }


class SaliencyImportance:
    """Torch-Pruning importance callable: ``importance(group) -> scores``.

    A channel's score is the saliency its group's weights hold (conv/linear rows and
    columns, norm scales), averaged over the group's layers; scores are divided by their
    mean so that groups of different layers compare when ranked globally (Torch-Pruning's
    ``"mean"`` normaliser).

    Args:
        saliency: ``{weight Parameter: saliency tensor of the same shape}``.
    """

    def __init__(self, saliency: dict[nn.Parameter, torch.Tensor]) -> None:
        self.saliency = saliency

    def _local(self, dep, idxs: list[int]) -> torch.Tensor | None:
        from torch_pruning.pruner import function as fn

        layer, handler = dep.target.module, dep.handler
        s = self.saliency.get(getattr(layer, "weight", None))
        if s is None or not isinstance(layer, _SCORED):
            return None
        transposed = getattr(layer, "transposed", False)
        if handler in (fn.prune_conv_out_channels, fn.prune_linear_out_channels):
            return (s.transpose(0, 1) if transposed else s)[idxs].flatten(1).sum(1)
        if handler in (fn.prune_conv_in_channels, fn.prune_linear_in_channels):
            local = (s if transposed else s.transpose(0, 1)).flatten(1).sum(1)
            groups = getattr(layer, "groups", 1)
            if groups not in (1, getattr(layer, "in_channels", 1)):
                local = local.repeat(groups)  # grouped conv: weights hold in_channels/groups
            return local[idxs]
        if handler in (fn.prune_batchnorm_out_channels, fn.prune_layernorm_out_channels):
            return s[idxs]
        return None

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        total, count = None, 0
        for i, (dep, idxs) in enumerate(group):
            local = self._local(dep, list(idxs))
            root = group[i].root_idxs
            if local is None or any(r is None for r in root):
                continue
            total = torch.zeros(len(group[0].idxs)) if total is None else total
            total.scatter_add_(0, torch.tensor(root), local.float())
            count += 1
        if total is None:
            return None
        total /= count
        return total / total.mean().clamp_min(1e-12)
