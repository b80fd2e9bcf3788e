"""Tiny models, data and tasks shared by the pruning tests (milliseconds to build)."""

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.task import Task


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)
    ).eval()


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 4),
    ).eval()


def data(n: int = 96, shape=(1, 8, 8), seed: int = 0, classes: int = 4) -> Dataset:
    """Inputs with per-feature scales spread over two decades (so activations matter) and
    labels that a small model can learn (sign pattern of a fixed projection)."""
    rng = np.random.default_rng(seed)
    scale = np.exp(np.random.default_rng(99).normal(0, 1.0, size=shape)).astype(np.float32)
    x = (rng.normal(size=(n, *shape)) * scale).astype(np.float32)
    proj = np.random.default_rng(123).normal(size=(int(np.prod(shape)), classes))
    y = (x.reshape(n, -1) @ proj).argmax(1)
    return Dataset((x,), y.astype(np.int64))


def task(model: nn.Module, shape=(1, 8, 8)) -> Task:
    return Task("test:tiny", model, data(192, shape, 1), data(96, shape, 2), data(96, shape, 3))
