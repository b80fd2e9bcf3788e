"""The one data wrapper that calibration, fine-tuning and evaluation all take.

Like NNCF's ``nncf.Dataset``: arrays in, batches out. Inputs are a tuple of numpy arrays
(one per model input, first axis = samples), so the same data feeds a PyTorch model
positionally and an ONNX Runtime session by input name.

Example:
    >>> ds = Dataset((np.zeros((10, 1, 8, 8), np.float32),), np.arange(10))
    >>> [x[0].shape for x, y in ds.batches(4)]
    [torch.Size([4, 1, 8, 8]), torch.Size([4, 1, 8, 8]), torch.Size([2, 1, 8, 8])]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """Samples as numpy arrays: ``inputs`` (one array per model input) and ``targets``.

    ``targets`` are labels for a labelled task, or reference outputs (e.g. FP32 embeddings)
    for a task whose metric is agreement with the original model.
    """

    inputs: tuple[np.ndarray, ...]
    targets: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, tuple):
            object.__setattr__(self, "inputs", tuple(self.inputs))
        n = len(self.targets)
        for i, arr in enumerate(self.inputs):
            if len(arr) != n:
                raise ValueError(f"input {i} has {len(arr)} samples, targets have {n}")

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: np.ndarray | slice) -> Dataset:
        return Dataset(tuple(a[index] for a in self.inputs), self.targets[index])

    def head(self, n: int) -> Dataset:
        return self.subset(slice(0, n))

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
        """Yield ``(inputs, targets)`` as torch tensors, in order or shuffled by ``seed``."""
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start : start + batch_size]
            xs = tuple(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in self.inputs)
            yield xs, torch.from_numpy(np.ascontiguousarray(self.targets[idx]))

    def numpy_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield input tuples as numpy arrays, in order (for ONNX Runtime)."""
        for start in range(0, len(self), batch_size):
            yield tuple(np.ascontiguousarray(a[start : start + batch_size]) for a in self.inputs)
