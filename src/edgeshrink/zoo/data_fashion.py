"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (70,000 labelled images).

The package puts the four IDX ``.gz`` files of the original release under
``/usr/share/datasets/fashion-mnist/`` (``apt-get install dataset-fashion-mnist``). They are
read with the standard library and numpy only; nothing is downloaded.

Example:
    >>> x, y = fashion_mnist("test")
    >>> x.shape, y.shape
    ((10000, 1, 28, 28), (10000,))
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["fashion_mnist", "FASHION_DIR", "FASHION_CLASSES", "FASHION_MEAN", "FASHION_STD"]

FASHION_DIR = Path(os.environ.get("EDGESHRINK_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # over the 60,000 training images
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, magic: int, header_ints: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw, dtype=">u4", count=header_ints)
    if int(header[0]) != magic:
        raise UserError(f"{path} is not an IDX file (magic {int(header[0]):#x}).")
    dims = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * header_ints)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: {data.size} values for shape {dims}.")
    return data.reshape(dims)


def fashion_mnist(split: str = "train", normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images as (N, 1, 28, 28) float32 and labels as int64.

    Args:
        split: ``"train"`` (60,000) or ``"test"`` (10,000).
        normalise: subtract :data:`FASHION_MEAN` and divide by :data:`FASHION_STD` after
            scaling to [0, 1]; ``False`` returns [0, 1] pixels.
    """
    if split not in _FILES:
        raise UserError(f"unknown Fashion-MNIST split {split!r}; use 'train' or 'test'.")
    images, labels = (FASHION_DIR / name for name in _FILES[split])
    if not images.exists() or not labels.exists():
        raise UserError(
            f"Fashion-MNIST is not installed at {FASHION_DIR}; "
            "install it with `apt-get install dataset-fashion-mnist`."
        )
    x = _read_idx(images, 0x803, 4).astype(np.float32) / 255.0
    y = _read_idx(labels, 0x801, 2).astype(np.int64)
    if normalise:
        x = (x - FASHION_MEAN) / FASHION_STD
    return x.reshape(-1, 1, 28, 28), y
