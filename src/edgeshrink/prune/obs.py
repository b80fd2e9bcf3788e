"""One-shot pruning from calibration data, no retraining: SparseGPT-like OBS reconstruction
and Wanda.

* **SparseGPT** (Frantar & Alistarh 2023): for each layer, with the Hessian of the layer-wise
  reconstruction loss ``H = 2 X X^T`` from its calibration inputs ``X`` (dampened by
  ``damp * mean(diag H)``), prune columns left to right in blocks; each pruned weight's error
  is spread over the not-yet-processed weights of its row through the upper Cholesky factor
  of ``H^-1`` (Optimal Brain Surgeon updates), and masks are picked per block by
  ``w^2 / [H^-1]_jj^2``.
* **Wanda** (Sun et al. 2023): score ``|W_ij| * ||X_j||_2``; prune the lowest scores within
  each output row (or each N:M group). No weight update.

Both run layer by layer in forward order, each layer calibrated on the outputs of the
already-pruned layers before it (the sequential scheme of both papers), and both support
unstructured and N:M patterns. Conv2d layers are handled through im2col (``unfold``), with
columns ordered ``(kh, kw, in)`` so N:M groups run over input channels as in
:mod:`edgeshrink.prune.nm`; grouped/depthwise and non-2D convs are refused by name.

Example:
    >>> model = prune_wanda(model, WandaConfig(sparsity=0.5), task.calibration)
    >>> model = prune_sparsegpt(model, SparseGPTConfig(pattern="2:4"), task.calibration)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgeshrink.config import Config, check_choice, check_range, register_config
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.prune.nm import nm_compatible
from edgeshrink.prune.unstructured import magnitude_mask, select_weights
from edgeshrink.transforms import transform

__all__ = [
    "SparseGPTConfig",
    "WandaConfig",
    "parse_pattern",
    "layer_inputs_to_columns",
    "wanda_scores",
    "wanda_mask",
    "mean_shift",
    "sparsegpt_prune_matrix",
    "prune_sparsegpt",
    "prune_wanda",
]


def parse_pattern(pattern: str) -> tuple[int, int]:
    """``"unstructured"`` -> (0, 0); ``"2:4"`` -> (2, 4); anything else is a user error."""
    if not isinstance(pattern, str):  # YAML reads an unquoted 2:4 as the number 124
        raise UserError(f"pattern must be a quoted string such as '2:4', got {pattern!r}.")
    if pattern == "unstructured":
        return 0, 0
    n_text, sep, m_text = pattern.partition(":")
    if sep and n_text.isdigit() and m_text.isdigit() and 0 < int(n_text) < int(m_text) <= 64:
        return int(n_text), int(m_text)
    raise UserError(f"pattern must be 'unstructured' or 'N:M' with 0 < N < M <= 64, got {pattern!r}.")


class _PatternKind:
    """``sparsity_kind`` that follows the ``pattern`` field (``unstructured`` on the class)."""

    def __get__(self, obj, objtype=None) -> str:
        if obj is None or obj.pattern == "unstructured":
            return "unstructured"
        return "n:m"


@dataclass(frozen=True)
class _OneShotConfig(Config):
    family = "pruning"
    sparsity_kind = _PatternKind()  # type: ignore[assignment]
    sparsity: float = 0.5
    pattern: str = "unstructured"
    samples: int = 512
    batch_size: int = 128
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range(f"{self.kind}.sparsity", self.sparsity, 0.0, 1.0, high_open=True)
        check_range(f"{self.kind}.samples", self.samples, 1, 1 << 20)
        check_range(f"{self.kind}.batch_size", self.batch_size, 1, 1 << 20)
        parse_pattern(self.pattern)


@register_config
@dataclass(frozen=True)
class SparseGPTConfig(_OneShotConfig):
    """SparseGPT-like one-shot pruning with OBS weight reconstruction.

    Attributes:
        sparsity: fraction zeroed per layer (unstructured pattern), in [0, 1).
        pattern: ``unstructured`` or ``N:M`` (e.g. ``2:4``; then ``sparsity`` is ignored).
        samples: calibration samples used (from the task's calibration split).
        batch_size: calibration batch size.
        exclude: regular expressions of weight names left dense.
        blocksize: columns processed together (lazy batch updates; a multiple of M).
        damp: dampening added to the Hessian diagonal, relative to its mean.
    """

    kind = "sparsegpt"
    blocksize: int = 128
    damp: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("sparsegpt.blocksize", self.blocksize, 1, 1 << 16)
        check_range("sparsegpt.damp", self.damp, 0.0, 10.0)
        _, m = parse_pattern(self.pattern)
        if m and self.blocksize % m:
            raise UserError(f"sparsegpt.blocksize must be a multiple of M={m}, got {self.blocksize}.")


@register_config
@dataclass(frozen=True)
class WandaConfig(_OneShotConfig):
    """Wanda: prune by ``|W| * ||X||_2`` within each output row, no weight update.

    Attributes:
        sparsity: fraction zeroed in every output row (unstructured pattern), in [0, 1).
        pattern: ``unstructured`` or ``N:M`` (e.g. ``2:4``; then ``sparsity`` is ignored).
        samples: calibration samples used (from the task's calibration split).
        batch_size: calibration batch size.
        exclude: regular expressions of weight names left dense.
        group: comparison group of the unstructured pattern: ``output`` (each output row
            loses ``sparsity`` of its weights, the paper's choice for LLMs) or ``layer``.
        bias_correction: score with *centred* input norms ``||X_j - mean_j||_2`` and add
            the pruned weights' mean contribution ``dW @ mean(X)`` to the layer's bias
            (layers without a bias keep the plain score). Not in the paper: with inputs of
            non-zero mean (post-ReLU, normalised pixel backgrounds) the errors of a row's
            pruned weights add coherently through the mean, which the per-weight score
            cannot see; the bias absorbs that part exactly.
    """

    kind = "wanda"
    group: str = "output"
    bias_correction: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("wanda.group", self.group, ("output", "layer"))
        check_choice("wanda.bias_correction", self.bias_correction, (False, True))


# ---- pure tensor maths -------------------------------------------------------------------


def _kernel_major(x_cols: torch.Tensor, channels: int) -> torch.Tensor:
    """Reorder im2col rows from (in, kh, kw) to (kh, kw, in)."""
    return x_cols.reshape(channels, -1, x_cols.shape[-1]).transpose(0, 1).reshape(-1, x_cols.shape[-1])


def weight_matrix(w: torch.Tensor) -> torch.Tensor:
    """2-D view of a Linear/Conv2d weight with columns ordered like its input columns."""
    return w.movedim(1, -1).reshape(w.shape[0], -1) if w.dim() == 4 else w


def weight_from_matrix(mat: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 4:
        return mat.reshape(shape[0], shape[2], shape[3], shape[1]).movedim(-1, 1)
    return mat.reshape(shape)


def layer_inputs_to_columns(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Inputs of a Linear/Conv2d as columns ``(features, tokens)`` matching ``weight_matrix``."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1]).T
    cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                    stride=module.stride)  # (N, in*kh*kw, L)
    cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)
    return _kernel_major(cols, module.in_channels)


def wanda_scores(w: torch.Tensor, x_norm: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * ||X_j||_2`` for a 2-D weight and the per-input-feature norms."""
    return w.abs() * x_norm.reshape(1, -1)


def wanda_mask(
    scores: torch.Tensor, sparsity: float, n: int = 0, m: int = 0, *, group: str = "output"
) -> torch.Tensor:
    """Keep-mask: per output row or whole layer (unstructured), or per N:M group of columns."""
    if not n and group == "layer":
        return magnitude_mask(scores, sparsity)
    if n:
        groups = scores.reshape(-1, m)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(1, torch.topk(groups, n, dim=1).indices, True)
        return keep.reshape(scores.shape)
    keep = torch.ones_like(scores, dtype=torch.bool)
    k = int(round(sparsity * scores.shape[1]))
    if k:
        keep.scatter_(1, torch.topk(scores, k, dim=1, largest=False).indices, False)
    return keep


def mean_shift(w: torch.Tensor, keep: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Bias change that restores a layer's mean output after pruning: ``(W * ~keep) @ mean``.

    The least-squares constant correction of the output error ``(W * ~keep) @ X`` (for a
    conv: per output channel, over every position), as in bias correction for quantization
    (Nagel et al. 2019, "Data-Free Quantization", section 4.2).
    """
    return (w * ~keep) @ mean


def _inverse_hessian_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp*mean(diag H) I)^-1`` (SparseGPT, Alg. 1)."""
    eye = torch.eye(h.shape[0], dtype=h.dtype)
    lam = damp * torch.mean(torch.diag(h)) + 1e-12
    for _ in range(8):  # grow the dampening until H is numerically positive definite
        try:
            chol = torch.linalg.cholesky(h + lam * eye)
            return torch.linalg.cholesky(torch.cholesky_inverse(chol), upper=True)
        except torch.linalg.LinAlgError:
            lam = lam * 10 if lam > 0 else 1e-6
    raise UserError("the calibration Hessian is singular even after dampening: use more samples.")


def sparsegpt_prune_matrix(
    w: torch.Tensor, h: torch.Tensor, sparsity: float, *, n: int = 0, m: int = 0,
    blocksize: int = 128, damp: float = 0.01,
) -> torch.Tensor:
    """Return a pruned copy of ``w`` (out, in) reconstructing ``w @ X`` for Hessian ``h``."""
    w = w.detach().clone().double()
    h = h.detach().clone().double()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    hinv = _inverse_hessian_factor(h, damp)
    cols = w.shape[1]
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        d = torch.diag(hinv1)
        if n:
            prune1 = torch.zeros_like(w1, dtype=torch.bool)
        else:
            prune1 = ~magnitude_mask(w1**2 / d.reshape(1, -1) ** 2, sparsity)
        for i in range(i2 - i1):
            if n and i % m == 0:
                score = w1[:, i : i + m] ** 2 / d[i : i + m].reshape(1, -1) ** 2
                prune1.scatter_(1, i + torch.topk(score, m - n, dim=1, largest=False).indices, True)
            col = w1[:, i]
            q = torch.where(prune1[:, i], torch.zeros_like(col), col)
            e = (col - q) / d[i]
            w1[:, i:] -= e.unsqueeze(1) @ hinv1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = e
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w


# ---- model surgery: calibration statistics per layer -------------------------------------


def _modules_by_weight(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    out = {}
    for name in names:
        module = modules[name.rsplit(".", 1)[0] if "." in name else ""]
        ok = isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)
        if not ok:
            raise UserError(
                f"layer {name} ({type(module).__name__}, groups={getattr(module, 'groups', 1)}) "
                "is not a Linear or ungrouped Conv2d, which one-shot pruning handles: exclude it."
            )
        out[name] = module
    return out


def _run(model: nn.Module, data: Dataset, batch_size: int) -> None:
    with torch.no_grad():
        for xs, _ in data.batches(batch_size):
            model(*xs)


def _forward_order(model: nn.Module, modules: dict[str, nn.Module], data: Dataset) -> list[str]:
    order: list[str] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, _o, n=n: order.append(n) if n not in order else None)
        for n, m in modules.items()
    ]
    try:
        _run(model, data.head(1), 1)
    finally:
        for h in handles:
            h.remove()
    return order + [n for n in modules if n not in order]


def _collect(module: nn.Module, model: nn.Module, data: Dataset, batch_size: int,
             accumulate: Callable[[torch.Tensor], None]) -> None:
    def hook(mod, inputs, _out):
        accumulate(layer_inputs_to_columns(mod, inputs[0].detach()).double())

    handle = module.register_forward_hook(hook)
    try:
        _run(model, data, batch_size)
    finally:
        handle.remove()


def _prune_sequential(model: nn.Module, cfg: _OneShotConfig, data: Dataset,
                      prune_layer: Callable[[str, nn.Module, Dataset], torch.Tensor]) -> nn.Module:
    if data is None or len(data) == 0:
        raise UserError(f"{cfg.kind} needs calibration data; this task has none.")
    data = data.head(min(cfg.samples, len(data)))
    weights = select_weights(model, cfg.exclude)
    n, m = parse_pattern(cfg.pattern)
    if n:
        weights = {k: w for k, w in weights.items() if nm_compatible(w, m)}
    modules = _modules_by_weight(model, list(weights))
    was_training = model.training
    model.eval()
    for name in _forward_order(model, modules, data):
        new = prune_layer(name, modules[name], data)
        with torch.no_grad():
            weights[name].copy_(weight_from_matrix(new, weights[name].shape).to(weights[name].dtype))
    return model.train(was_training)


def prune_sparsegpt(model: nn.Module, cfg: SparseGPTConfig, data: Dataset) -> nn.Module:
    """SparseGPT-like pruning of every Linear/Conv2d in place, calibrated on ``data``."""
    n, m = parse_pattern(cfg.pattern)

    def layer(_name: str, module: nn.Module, calib: Dataset) -> torch.Tensor:
        wmat = weight_matrix(module.weight.detach())
        stats = {"h": torch.zeros(wmat.shape[1], wmat.shape[1], dtype=torch.float64), "t": 0}

        def acc(x):
            stats["h"] += x @ x.T
            stats["t"] += x.shape[1]

        _collect(module, model, calib, cfg.batch_size, acc)
        h = 2.0 * stats["h"] / max(stats["t"], 1)
        return sparsegpt_prune_matrix(wmat, h, cfg.sparsity, n=n, m=m,
                                      blocksize=cfg.blocksize, damp=cfg.damp)

    return _prune_sequential(model, cfg, data, layer)


def prune_wanda(model: nn.Module, cfg: WandaConfig, data: Dataset) -> nn.Module:
    """Wanda pruning of every Linear/Conv2d in place, calibrated on ``data``."""
    n, m = parse_pattern(cfg.pattern)

    def layer(_name: str, module: nn.Module, calib: Dataset) -> torch.Tensor:
        wmat = weight_matrix(module.weight.detach())
        stats = {"sq": torch.zeros(wmat.shape[1], dtype=torch.float64),
                 "sum": torch.zeros(wmat.shape[1], dtype=torch.float64), "t": 0}

        def acc(x):
            stats["sq"] += (x**2).sum(dim=1)
            stats["sum"] += x.sum(dim=1)
            stats["t"] += x.shape[1]

        _collect(module, model, calib, cfg.batch_size, acc)
        correct = cfg.bias_correction and module.bias is not None
        mean = stats["sum"] / max(stats["t"], 1)
        sq = stats["sq"] - stats["t"] * mean**2 if correct else stats["sq"]
        scores = wanda_scores(wmat.double(), sq.clamp_min(0.0).sqrt())
        keep = wanda_mask(scores, cfg.sparsity, n, m, group=cfg.group)
        if correct:
            with torch.no_grad():
                module.bias.add_(mean_shift(wmat.double(), keep, mean).to(module.bias.dtype))
        return wmat * keep

    return _prune_sequential(model, cfg, data, layer)


def _calibration(ctx) -> Dataset:
    if ctx is None or getattr(ctx, "task", None) is None:
        raise UserError("one-shot pruning needs a task with calibration data (ctx.task).")
    return ctx.task.calibration


@transform(SparseGPTConfig)
def _handle_sparsegpt(cfg: SparseGPTConfig, model: nn.Module, ctx) -> nn.Module:
    return prune_sparsegpt(model, cfg, _calibration(ctx))


@transform(WandaConfig)
def _handle_wanda(cfg: WandaConfig, model: nn.Module, ctx) -> nn.Module:
    return prune_wanda(model, cfg, _calibration(ctx))
