"""ONNX Runtime target (``.onnx``): load, run and time a file on ORT's CPU provider, and
choose the INT8 format this CPU runs without saturating.

Candidates whose format no runtime executes (``simulated``) are measured here too: their
dense decoded ``.onnx`` is what runs at load, so it gives the bytes and latency, while
``art.simulate`` gives the metric.

INT8 on x86: ORT's U8S8 kernels (uint8 activations x int8 weights) multiply pairs with
``VPMADDUBSW`` where the CPU has no VNNI (AVX2, or AVX-512 without VNNI), and the int16 sum
of a pair saturates (255 x 127 x 2 = 64,770 > 32,767). ORT's documentation names the cure:
``reduce_range``, weights on [-64, 64], whose pair sums cannot (255 x 64 x 2 = 32,640).
On an AVX2-only AMD EPYC the pretrained MobileNetV2 static INT8 agreed with FP32 on 56 % of
top-1 against 83.5 % on a VNNI host, with no warning; :func:`int8_format` reads the CPU
flags and chooses, and the static and dynamic INT8 builds follow it: the device profile's
``cpu_flags`` under ``study --device``, this machine's otherwise (what 7-bit weights cost
where nothing saturates: benchmarks/RESULTS.md, ``host-int8-format``). A file built for a
device that saturates on this machine, or the reverse, carries :func:`host_caveat`'s
sentence: its accuracy measured here is not the device's.

Example:
    >>> from edgeshrink.targets.onnxruntime import int8_format
    >>> int8_format(["avx2", "fma"])["reduce_range"]
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.targets.base import Target

__all__ = ["TARGET", "OnnxRuntimeTarget", "int8_format", "host_caveat", "onnx_outputs",
           "latency_stats", "runtime_node_count", "VNNI_FLAGS"]

# Flags whose int8 dot-product instructions accumulate u8 x s8 in int32 (no int16 pair sum):
# AVX-512 VNNI, AVX-VNNI (Alder Lake and later), AMX-INT8.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# x86 flags whose presence says the flags come from an x86 CPU at all
_X86_FLAGS = ("sse4_2", "avx", "avx2", "avx512f", "avx512bw", "fma", "f16c")


def int8_format(cpu_flags: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """The INT8 format ORT should get on a CPU with ``cpu_flags`` (default: this machine's,
    as :func:`edgeshrink.bench.machine.cpu_flags` reads them; a device profile's flags work
    the same way).

    Returns ``{"activations": "uint8", "reduce_range": bool, "cpu_flags": [...],
    "reason": one sentence}``. ``reduce_range`` (7-bit weights, ORT's documented remedy) is
    chosen on x86 without VNNI, where U8S8 pair sums saturate in int16; with VNNI, and on
    Arm (whose int8 dot products accumulate in int32), full 8-bit weights are exact.
    """
    if cpu_flags is None:
        from edgeshrink.bench.machine import cpu_flags as host_flags

        cpu_flags = host_flags()
    flags = [str(f) for f in cpu_flags]
    vnni = [f for f in VNNI_FLAGS if f in flags]
    x86 = any(f in flags for f in _X86_FLAGS)
    if vnni:
        reduce, why = False, (f"{vnni[0]} accumulates uint8 x int8 in int32, so full 8-bit "
                              "weights do not saturate")
    elif x86:
        reduce, why = True, ("x86 without VNNI multiplies uint8 x int8 pairs into a saturating "
                             "int16 sum (VPMADDUBSW), so weights use 7 bits (reduce_range)")
    else:
        reduce, why = False, ("no x86 flags: Arm int8 dot products (and the reference kernels) "
                              "accumulate in int32, so full 8-bit weights do not saturate")
    return {"activations": "uint8", "reduce_range": reduce, "cpu_flags": flags,
            "reason": f"{why}."}


def host_caveat(reduce_range: bool, cpu_flags: tuple[str, ...] | None,
                device: str | None = None) -> str | None:
    """One sentence when a file with these weights, built for a CPU with ``cpu_flags``,
    would saturate on exactly one of that CPU and this machine, so that the accuracy measured
    here is not the device's; ``None`` otherwise. 7-bit weights (``reduce_range``) never
    saturate; ``cpu_flags=None`` means the file is built for this machine itself."""
    if reduce_range or cpu_flags is None:
        return None
    here, there = int8_format()["reduce_range"], int8_format(cpu_flags)["reduce_range"]
    who = f"device {device}" if device else "the target CPU"
    if here and not there:
        return (f"8-bit weights built for {who} saturate in ONNX Runtime's U8S8 kernels on "
                "this host (x86 without VNNI), so the accuracy measured here may be lower "
                "than the device's: measure it on the device (edgeshrink bench).")
    if there and not here:
        return (f"8-bit weights saturate on {who} (x86 without VNNI) but not on this host, so "
                "the accuracy measured here may be higher than the device's: use "
                "reduce_range=auto or on.")
    return None


def onnx_outputs(path: Path | str, data, *, batch_size: int = 128, threads: int = 2):
    """First output of the ONNX file over ``data`` (an edgeshrink Dataset), stacked."""
    from edgeshrink.export import ort_session, run_onnx

    session = ort_session(path, threads)
    return np.concatenate([run_onnx(session, xs) for xs in data.numpy_batches(batch_size)])


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


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    label = "ONNX Runtime (.onnx)"
    suffix = ".onnx"
    precisions = frozenset({"fp32", "fp16", "int8"})

    def missing(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return "ONNX Runtime is not installed; install it with `pip install onnxruntime`."
        return None

    def load(self, path: Path, threads: int = 1):
        from edgeshrink.export import ort_session, run_onnx

        session = ort_session(path, threads)
        return lambda *xs: run_onnx(session, xs)

    def outputs(self, art, data, batch_size: int = 128) -> np.ndarray:
        """ORT's outputs on the file; a simulated format's outputs come from its simulation
        (``art.simulate``), since no runtime executes that format."""
        if art.simulate is not None:
            from edgeshrink.measure.artifact import evaluate_outputs

            return evaluate_outputs(art.simulate, data, batch_size)
        return onnx_outputs(art.path, data, batch_size=batch_size)

    def figures(self, art, inputs: tuple[np.ndarray, ...], threads: tuple[int, ...],
                budget_s: float = 1.0) -> dict[str, Any]:
        """Bytes, latency per thread count (ORT's own session timing, with CPU use) and
        fresh-process peak memory; ``notes["onnx_nodes"]``: nodes ORT dispatches."""
        from edgeshrink.export import ort_session

        by_threads, feeds = {}, None
        for t in threads:
            session = ort_session(art.path, t)
            feeds = feeds or {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)}
            by_threads[str(t)] = latency_stats(session, feeds, t, budget_s=budget_s)
        return {
            **self.file_figures(art), "by_threads": by_threads,
            "peak_mb": self.peak_memory_mb(art, inputs, max(threads)),
            "notes": {"onnx_nodes": runtime_node_count(art.path)},  # per-dispatch estimates
        }

    def peak_memory_mb(self, art, inputs: tuple[np.ndarray, ...], threads: int) -> float | None:
        """The memory a device owner sees: a fresh process that loads and runs the file."""
        from edgeshrink.bench.runner import peak_memory_fresh_process
        from edgeshrink.export import ort_session

        names = [i.name for i in ort_session(art.path, 1).get_inputs()]
        feeds = dict(zip(names, inputs, strict=True))
        return peak_memory_fresh_process(art.path, feeds, threads=threads)

    def loading_code(self, art, *, file_name: str) -> str:
        """Load ``file_name`` with ``onnxruntime`` and run one input of the right shapes
        (named and typed from the file where it opens here, else read at run time)."""
        from edgeshrink.export import ort_session

        try:
            inputs = ort_session(art.path, 1).get_inputs()
        except Exception:  # noqa: BLE001 - a file this machine cannot open: shapes at run time
            inputs = None
        feeds = []
        for i in inputs or ():
            shape = tuple(d if isinstance(d, int) else 1 for d in i.shape)
            dtype = _NUMPY_TYPES.get(i.type, "float32")
            feeds.append(f'"{i.name}": np.zeros({shape}, dtype=np.{dtype})')
        feeds = (f"{{{', '.join(feeds)}}}" if inputs is not None else
                 "{i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], "
                 "np.float32)\n         for i in session.get_inputs()}")
        return (
            "import numpy as np\n"
            "import onnxruntime as ort\n\n"
            f'session = ort.InferenceSession("{file_name}", providers=["CPUExecutionProvider"])\n'
            f"feeds = {feeds}  # your inputs here\n"
            "outputs = session.run(None, feeds)[0]\n"
        )


_NUMPY_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
                "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
                "tensor(int8)": "int8", "tensor(bool)": "bool_"}


TARGET = OnnxRuntimeTarget()
