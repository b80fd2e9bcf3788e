"""A tiny trained classifier on a synthetic 2-D problem for the quant tests (milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.task import Task
from edgeshrink.train import FinetuneConfig, fit
from edgeshrink.transforms import TransformContext


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU(),
                                        nn.Linear(32, 4))

    def forward(self, x):
        return self.classifier(self.features(x))


def _data(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.6, (n, 1, 8, 8)).astype(np.float32)
    for c in range(4):  # each class lights one quadrant
        r, k = divmod(c, 2)
        x[y == c, 0, 4 * r : 4 * r + 4, 4 * k : 4 * k + 4] += 1.0
    return Dataset((x,), y.astype(np.int64))


def tiny_task() -> Task:
    torch.manual_seed(0)
    train, calib, test = _data(400, 0), _data(128, 1), _data(300, 2)
    model = fit(TinyNet(), FinetuneConfig(epochs=3, lr=3e-3, keep_zeros=False), train)
    return Task("tiny", model, train, calib, test)


def ctx_for(task: Task, tmp: Path, name: str = "c") -> TransformContext:
    return TransformContext(task=task, workdir=Path(tmp), name=name, teacher=task.model)


def accuracy(task: Task, art) -> float:
    from edgeshrink.measure.artifact import evaluate_outputs, onnx_outputs

    out = (evaluate_outputs(art.simulate, task.eval) if art.simulate
           else onnx_outputs(art.path, task.eval))
    return task.metric(out, task.eval.targets)
