"""On-device benchmarking of ``.onnx`` (ONNX Runtime), ``.tflite`` (LiteRT) and ``.pte``
(ExecuTorch) files: ``edgeshrink bench`` and the library behind it.

Everything imported here is the standard library and numpy; the runtime a file needs is
imported when the file is opened, so that ``python -m edgeshrink.bench`` (or the single file
from ``--write-pyz``) runs on a device where only numpy and that runtime are installed. ``edgeshrink/__init__.py`` must stay free of imports for
that to hold. The study calls the same functions for every candidate.

Example:
    >>> from edgeshrink.bench import BenchOptions, bench_model
    >>> report = bench_model("model.onnx", BenchOptions(threads=1, runs=100))  # doctest: +SKIP
    >>> report["latency_ms"]["p50"], report["peak_rss_mb"]  # doctest: +SKIP
    (1.93, 61.4)
"""

from edgeshrink.bench.inputs import (
    InputSpec,
    generate_feeds,
    input_specs,
    load_npz_feeds,
    parse_dims,
)
from edgeshrink.bench.machine import current_rss_mb, machine_info, peak_rss_mb
from edgeshrink.bench.runner import (
    BenchOptions,
    bench_fresh_process,
    bench_model,
    compare,
    peak_memory_fresh_process,
)
from edgeshrink.bench.session import (
    RUNTIMES,
    BenchError,
    model_size_bytes,
    open_session,
    runtime_for,
    sha256_file,
)
from edgeshrink.bench.timing import CpuMeter, measure_latency, summarize, time_interleaved

__all__ = [
    "BenchError",
    "BenchOptions",
    "CpuMeter",
    "InputSpec",
    "bench_fresh_process",
    "bench_model",
    "compare",
    "current_rss_mb",
    "generate_feeds",
    "input_specs",
    "load_npz_feeds",
    "machine_info",
    "measure_latency",
    "model_size_bytes",
    "open_session",
    "parse_dims",
    "peak_memory_fresh_process",
    "peak_rss_mb",
    "RUNTIMES",
    "runtime_for",
    "sha256_file",
    "summarize",
    "time_interleaved",
]
