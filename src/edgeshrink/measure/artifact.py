"""Runtime-neutral facts about the file that would ship: bytes, encoded bytes, sha256, and a
simulation's outputs. Running, timing and sizing a file in its runtime is the target's job
(:mod:`edgeshrink.targets`): ``target_for(art).outputs(...)`` and ``.figures(...)``.

``onnx_outputs``, ``latency_stats`` and ``runtime_node_count`` moved to
:mod:`edgeshrink.targets.onnxruntime`; they are still importable from here.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeshrink.data import Dataset

__all__ = ["file_sizes", "encoded_file_size", "evaluate_outputs", "sha256"]

# moved to the ONNX Runtime target; resolved on first use (no import of targets at load)
_MOVED = {"onnx_outputs", "latency_stats", "runtime_node_count"}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module("edgeshrink.targets.onnxruntime"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sha256(path: Path | str) -> str:
    from edgeshrink.bench.session import sha256_file

    return sha256_file(path)


def file_sizes(path: Path | str) -> tuple[int, int]:
    """(bytes on disk, bytes after deflate at level 9): zeros from pruning pay off in the latter."""
    data = Path(path).read_bytes()
    return len(data), len(zlib.compress(data, 9))


def encoded_file_size(path: Path | str) -> int:
    """Bytes of the file with its weights in the sparse/entropy-coded storage form.

    The graph is kept as it is; every initializer is replaced by its encoding from
    :mod:`edgeshrink.encode` (which decodes back exactly), so this is what a device would
    store and expand into the dense file at load.
    """
    import onnx
    from onnx import numpy_helper

    from edgeshrink.encode import encoded_size

    model = onnx.load(str(path))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    raw = sum(a.nbytes for a in arrays.values())
    return Path(path).stat().st_size - raw + encoded_size(arrays)


def evaluate_outputs(simulate: Callable, data: Dataset, batch_size: int = 128) -> np.ndarray:
    """Outputs of a simulation callable (numpy inputs -> numpy outputs) over ``data``."""
    return np.concatenate([simulate(*xs) for xs in data.numpy_batches(batch_size)])
