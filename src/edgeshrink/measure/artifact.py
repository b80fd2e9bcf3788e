"""Measuring the file that would ship: metric through ONNX Runtime, bytes, latency, memory."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeshrink.data import Dataset
from edgeshrink.export import ort_session, run_onnx

__all__ = [
    "file_sizes", "encoded_file_size", "onnx_outputs", "runtime_figures", "evaluate_outputs",
    "latency_stats", "sha256", "runtime_node_count",
]


def sha256(path: Path | str) -> str:
    from edgeshrink.bench.session import sha256_file

    return sha256_file(path)


def runtime_node_count(path: Path | str) -> int:
    """Nodes ONNX Runtime dispatches for the file: the graph after its portable fusions
    (``ORT_ENABLE_EXTENDED``: Conv+activation, LayerNorm, GELU, attention, ...), not the
    exporter's node list. Each costs a dispatch, which dominates small models' latency."""
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return len(onnx.load(opts.optimized_model_filepath, load_external_data=False).graph.node)


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


def onnx_outputs(path: Path | str, data: Dataset, *, batch_size: int = 128, threads: int = 2):
    """First output of the ONNX file over ``data``, stacked (numpy)."""
    session = ort_session(path, threads)
    return np.concatenate([run_onnx(session, xs) for xs in data.numpy_batches(batch_size)])


def evaluate_outputs(simulate: Callable, data: Dataset, batch_size: int = 128) -> np.ndarray:
    """Outputs of a simulation callable (numpy inputs -> numpy outputs) over ``data``."""
    return np.concatenate([simulate(*xs) for xs in data.numpy_batches(batch_size)])


def latency_stats(session, feeds: dict[str, np.ndarray], threads: int, *,
                  budget_s: float = 1.0) -> dict:
    """Latency (ms) of an ORT session at batch 1: warm-up, then at least 50 runs and until
    ``budget_s`` has passed (capped at 5,000 runs); see ``edgeshrink.bench``."""
    from edgeshrink.bench.timing import measure_latency

    stats = measure_latency(session, feeds, threads=threads, runs=50, budget_s=None)
    if stats["mean"] * 50 / 1e3 < budget_s:  # fast model: spend the budget for a stable median
        stats = measure_latency(session, feeds, threads=threads, warmup=0, runs=5000,
                                budget_s=budget_s)
    return {k: stats[k] for k in ("p50", "p90", "p99", "min", "mean", "count", "cpu_util")
            if k in stats}


_OV_CHILD = r"""
import json, sys
import numpy as np, openvino as ov
ir, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(npz)
cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
       "PERFORMANCE_HINT": "LATENCY"}
compiled = ov.Core().compile_model(ir, "CPU", cfg)
feeds = [arrays[f"arr_{k}"] for k in range(len(arrays.files))]
for _ in range(3):
    compiled(feeds)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"peak_kb": int(hwm.split()[1])}))
"""


def _openvino_figures(art, inputs: tuple[np.ndarray, ...], threads, budget_s: float) -> dict:
    """Size, latency and fresh-process memory of an OpenVINO IR (``.xml`` + ``.bin``)."""
    import hashlib
    import json
    import subprocess
    import sys
    import tempfile

    import openvino as ov

    from edgeshrink.bench.timing import summarize, time_interleaved
    from edgeshrink.quant.openvino import compile_openvino

    ir = Path(art.notes["ir"])
    blob = ir.read_bytes() + ir.with_suffix(".bin").read_bytes()
    model = ov.Core().read_model(str(ir))
    by_threads = {}
    for t in threads:
        run = compile_openvino(model, t)
        samples = time_interleaved({"m": lambda run=run: run(*inputs)}, warmup=10, runs=None,
                                   budget_s=budget_s)["m"]
        stats = summarize(samples)
        by_threads[str(t)] = {k: stats[k] for k in ("p50", "p90", "p99", "min", "mean", "count")}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "inputs.npz"
        np.savez(npz, *inputs)
        out = subprocess.run([sys.executable, "-c", _OV_CHILD, str(ir), str(npz), str(max(threads))],
                             capture_output=True, text=True, check=True, timeout=600)
    return {
        "path": ir, "size": len(blob), "compressed": len(zlib.compress(blob, 9)),
        "sha256": hashlib.sha256(blob).hexdigest(), "by_threads": by_threads,
        "peak_mb": json.loads(out.stdout.strip().splitlines()[-1])["peak_kb"] / 1024.0,
    }


def runtime_figures(art, inputs: tuple[np.ndarray, ...], threads: tuple[int, ...],
                    budget_s: float = 1.0) -> dict:
    """The shipped file's bytes, latency per thread count and fresh-process peak memory,
    in the runtime that runs it: ONNX Runtime (also for ``simulated`` candidates, whose
    dense decoded file is what runs at load) or OpenVINO."""
    if art.runtime == "openvino":
        return _openvino_figures(art, inputs, threads, budget_s)
    from edgeshrink.bench.runner import peak_memory_fresh_process

    size, compressed = file_sizes(art.path)
    by_threads, feeds = {}, None
    for t in threads:
        session = ort_session(art.path, t)
        feeds = feeds or {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)}
        by_threads[str(t)] = latency_stats(session, feeds, t, budget_s=budget_s)
    return {
        "path": art.path, "size": size, "compressed": compressed, "sha256": sha256(art.path),
        "by_threads": by_threads,
        # the memory a device owner sees: a fresh process that loads and runs the file
        "peak_mb": peak_memory_fresh_process(art.path, feeds, threads=max(threads)),
    }
