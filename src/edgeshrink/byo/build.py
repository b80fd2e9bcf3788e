"""A :class:`~edgeshrink.task.Task` from a model file and a data file.

The data is split once, deterministically (seed 0 unless given): a held-out evaluation
split (30 %, stratified by label when there are class labels), the rest for fine-tuning,
and a calibration set of at most 256 samples drawn from that rest. Without labels the
targets are the original model's outputs, computed once, and the metric is agreement with
them; a candidate is then scored on how closely it reproduces the model it came from.

Example:
    >>> task = byo_task("my.onnx", "digits.npz")  # doctest: +SKIP
    >>> print(task.description)  # doctest: +SKIP
    my.onnx (onnx) on digits.npz: 1,797 samples with 10 class labels; eval 540 (30 %, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeshrink.byo.metrics import metric_for
from edgeshrink.byo.models import load_model
from edgeshrink.byo.sources import DataOptions, read_data
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.task import Task

__all__ = ["byo_task", "split_indices"]

EVAL_FRACTION = 0.3
CALIBRATION = 256


def byo_task(model_path: Path | str, data_path: Path | str, *, arch: str | None = None,
             metric: str | None = None, data_opts: DataOptions = DataOptions(),
             seed: int = 0) -> Task:
    """Load the model and the data, check that they fit, split, and pick the metric."""
    model, kind = load_model(model_path, arch)
    inputs, labels = read_data(data_path, data_opts)
    reference = _reference_outputs(model, inputs, Path(model_path).name, Path(data_path).name)
    name = _choose_metric(metric, labels, reference)
    mobj = metric_for(name)
    classes = labels is not None and labels.dtype.kind in "iu" and reference.ndim == 2
    ev, tr, cal = split_indices(len(reference), labels if classes else None, seed)
    use_labels = name == "accuracy" or (name == "mse" and _fits(labels, reference))
    targets = labels if use_labels else reference
    full = Dataset(inputs, targets)
    train_targets = Dataset(inputs, labels if use_labels else reference)
    loss = _loss_for(name, use_labels)
    desc = _describe(Path(model_path).name, kind, Path(data_path).name, len(reference),
                     labels, classes, (len(ev), len(tr), len(cal)), seed, name, use_labels)
    return Task(
        name=f"{Path(model_path).name}@{Path(data_path).name}", model=model,
        train=train_targets.subset(tr), calibration=full.subset(cal), eval=full.subset(ev),
        metric=mobj, input_names=getattr(model, "input_names", None) or _names(len(inputs)),
        seed=seed, description=desc, loss_fn=loss,
    )


def split_indices(n: int, labels: np.ndarray | None, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eval, train, calibration) indices: seeded, stratified by ``labels`` when given."""
    from sklearn.model_selection import train_test_split

    if n < 4:
        raise UserError(f"the data holds {n} samples; a study needs at least 4 "
                        "(some to calibrate, some to evaluate).")
    n_eval = max(1, round(EVAL_FRACTION * n))
    strat = labels if labels is not None and _stratifiable(labels, n_eval) else None
    tr, ev = train_test_split(np.arange(n), test_size=n_eval, random_state=seed, stratify=strat)
    order = np.random.default_rng(seed).permutation(len(tr))
    cal = np.sort(tr[order[:CALIBRATION]])
    return np.sort(ev), np.sort(tr), cal


def _stratifiable(labels: np.ndarray, n_eval: int) -> bool:
    counts = np.unique(labels, return_counts=True)[1]
    return counts.min() >= 2 and n_eval >= len(counts) and len(labels) - n_eval >= len(counts)


def _reference_outputs(model, inputs, model_name: str, data_name: str) -> np.ndarray:
    """The original model's first output on every sample; data that does not fit the
    model is one sentence, before anything is written."""
    shapes = ", ".join(str(tuple(a.shape[1:])) for a in inputs)
    expected = _expected_shapes(model)
    if expected is not None and not _shapes_match(expected, [a.shape[1:] for a in inputs]):
        raise UserError(f"{data_name} has samples of shape {shapes}, but {model_name} takes "
                        f"{', '.join(map(str, expected))}; resize or reshape the data "
                        "(--input-size for images).")
    outs = []
    try:
        with torch.no_grad():
            for start in range(0, len(inputs[0]), 256):
                xs = tuple(torch.from_numpy(np.ascontiguousarray(a[start:start + 256]))
                           for a in inputs)
                out = model(*xs)
                outs.append((out[0] if isinstance(out, tuple | list) else out).float().numpy())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{model_name} cannot run {data_name}'s samples of shape {shapes} "
                        f"({first}); check the input size and channels.") from None
    return np.concatenate(outs)


def _expected_shapes(model) -> list[tuple] | None:
    """Per-sample input shapes an ONNX model declares (None where unknown)."""
    if not hasattr(model, "session"):
        return None
    return [tuple(d if isinstance(d, int) else None for d in i.shape[1:])
            for i in model.session().get_inputs()]


def _shapes_match(expected: list[tuple], got: list[tuple]) -> bool:
    if len(expected) != len(got):
        return False
    return all(len(e) == len(g) and all(a is None or a == b for a, b in zip(e, g, strict=True))
               for e, g in zip(expected, got, strict=True))


def _fits(labels, reference) -> bool:
    return labels is not None and labels.size == reference.size


def _choose_metric(name: str | None, labels, reference: np.ndarray) -> str:
    classifier = reference.ndim == 2 and reference.shape[1] > 1
    integer = labels is not None and labels.dtype.kind in "iu"
    if name is None:
        if labels is not None and classifier and integer:
            return "accuracy"
        if labels is not None and _fits(labels, reference):
            return "mse"
        return "top1-agreement" if classifier else "cosine"
    if name == "accuracy":
        if labels is None or not integer:
            raise UserError("--metric accuracy needs integer class labels in the data "
                            "(npz key 'y', a CSV label column, or class sub-folders).")
        if not classifier:
            raise UserError("--metric accuracy needs a model whose output holds one score "
                            "per class (shape (N, classes)).")
        if labels.max() >= reference.shape[1] or labels.min() < 0:
            raise UserError(f"labels run from {labels.min()} to {labels.max()}, but the model "
                            f"scores {reference.shape[1]} classes.")
    elif name.endswith("-agreement") and not classifier:
        raise UserError(f"--metric {name} needs a model whose output holds one score per class; "
                        "use cosine or mse.")
    return name


def _loss_for(metric: str, use_labels: bool):
    """A regression target needs a regression loss; classification keeps the default loop."""
    if metric in ("mse", "cosine"):
        if metric == "cosine" and not use_labels:
            return lambda out, target: 1.0 - F.cosine_similarity(
                out.flatten(1), target.flatten(1)).mean()
        return lambda out, target: F.mse_loss(out, target.reshape(out.shape).to(out.dtype))
    return None


def _names(n: int) -> tuple[str, ...]:
    return ("input",) if n == 1 else tuple(f"input{i}" for i in range(n))


def _describe(model_name, kind, data_name, n, labels, classes, sizes, seed, metric,
              use_labels) -> str:
    n_ev, n_tr, n_cal = sizes
    if labels is None:
        what = "no labels"
    elif classes:
        what = f"{len(np.unique(labels))} class labels"
    else:
        what = "numeric labels"
    how = "stratified, " if classes and labels is not None else ""
    against = "the labels" if use_labels else "the original model's outputs"
    return (f"{model_name} ({kind}) on {data_name}: {n:,} samples with {what}; eval {n_ev:,} "
            f"({how}seed {seed}), train {n_tr:,}, calibration {n_cal:,} drawn from train; "
            f"metric {metric} against {against}")
