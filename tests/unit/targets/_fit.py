"""Train a small test net on a task's training split for a few full-batch Adam steps:
confident answers, so that an agreement check tests the file, not tie-breaking."""

from __future__ import annotations

import torch
from torch import nn


def fit(model: nn.Module, train, steps: int, lr: float = 1e-2) -> nn.Module:
    x, y = torch.from_numpy(train.inputs[0]), torch.from_numpy(train.targets)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()
