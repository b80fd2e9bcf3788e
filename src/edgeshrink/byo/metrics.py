"""Metrics for a user's model: accuracy on labels, or agreement with the original model.

``--metric``: ``accuracy`` (labels), ``top1-agreement`` / ``top5-agreement`` (any k: the
original model's top-1 class is among the candidate's k highest), ``cosine`` (mean cosine
similarity of each sample's outputs to the original's), ``mse`` (mean squared error against
the labels when they have the outputs' shape, else against the original's outputs).

Example:
    >>> metric_for("cosine").name
    'cosine'
"""

from __future__ import annotations

import re

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.task import Metric, accuracy_metric

__all__ = ["metric_for", "METRICS", "topk_agreement", "mean_cosine", "mse"]

METRICS = ("accuracy", "top1-agreement", "top5-agreement", "cosine", "mse")


def topk_agreement(k: int):
    """% of samples whose reference top-1 class (targets = reference outputs) is among the
    candidate's ``k`` highest outputs."""

    def fn(outputs: np.ndarray, targets: np.ndarray) -> float:
        kk = min(k, outputs.shape[1])
        top = np.argsort(-outputs, axis=1, kind="stable")[:, :kk]
        return 100.0 * float(np.mean((top == targets.argmax(1)[:, None]).any(1)))

    return fn


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1).astype(np.float64)


def mean_cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over samples of the cosine similarity between output and reference vectors."""
    a, b = _flat(outputs), _flat(targets)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(1) / np.maximum(den, 1e-12)))


def mse(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared error (targets reshaped to the outputs' shape)."""
    return float(np.mean((_flat(outputs) - _flat(targets).reshape(len(targets), -1)) ** 2))


def metric_for(name: str) -> Metric:
    """The :class:`Metric` called ``name`` (see :data:`METRICS`; ``topK-agreement`` for any K)."""
    if name == "accuracy":
        return accuracy_metric
    match = re.fullmatch(r"top(\d+)-agreement", name)
    if match and int(match.group(1)) >= 1:
        k = int(match.group(1))
        extras = {} if k == 1 else {"top1_agreement": topk_agreement(1)}
        return Metric(f"top{k}_agreement", topk_agreement(k), extras=extras)
    if name == "cosine":
        return Metric("cosine", mean_cosine, unit="")
    if name == "mse":
        return Metric("mse", mse, higher_is_better=False, unit="")
    raise UserError(f"unknown --metric {name!r}; choose one of {', '.join(METRICS)} "
                    "(topK-agreement for any K).")
