"""Measuring the file that would ship: metric through ONNX Runtime, bytes, latency, memory."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeshrink.data import Dataset
from edgeshrink.export import ort_session, run_onnx

__all__ = ["file_sizes", "onnx_outputs", "evaluate_outputs", "latency_stats"]


def file_sizes(path: Path | str) -> tuple[int, int]:
    """(bytes on disk, bytes after deflate at level 9): zeros from pruning pay off in the latter."""
    data = Path(path).read_bytes()
    return len(data), len(zlib.compress(data, 9))


def onnx_outputs(path: Path | str, data: Dataset, *, batch_size: int = 128, threads: int = 2):
    """First output of the ONNX file over ``data``, stacked (numpy)."""
    session = ort_session(path, threads)
    return np.concatenate([run_onnx(session, xs) for xs in data.numpy_batches(batch_size)])


def evaluate_outputs(simulate: Callable, data: Dataset, batch_size: int = 128) -> np.ndarray:
    """Outputs of a simulation callable (numpy inputs -> numpy outputs) over ``data``."""
    return np.concatenate([simulate(*xs) for xs in data.numpy_batches(batch_size)])


def latency_stats(
    path: Path | str, inputs: tuple[np.ndarray, ...], threads: int, *,
    warmup: int = 10, min_runs: int = 50, budget_s: float = 1.0,
) -> dict:
    """p50/p90 latency (ms) of one ORT session: warm-up, then runs until the time budget."""
    import time

    session = ort_session(path, threads)
    for _ in range(warmup):
        run_onnx(session, inputs)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        run_onnx(session, inputs)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 5000:
            break
    arr = np.asarray(times)
    return {"p50": float(np.median(arr)), "p90": float(np.percentile(arr, 90)), "runs": len(arr)}
