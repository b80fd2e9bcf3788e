"""One benchmark of a model, an interleaved comparison of several, and the memory figure of
a fresh process: what ``edgeshrink bench`` reports and what a study records per candidate.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.bench.inputs import (
    feeds_batch,
    generate_feeds,
    input_specs,
    load_npz_feeds,
)
from edgeshrink.bench.machine import current_rss_mb, machine_info, peak_rss_mb, versions
from edgeshrink.bench.session import (
    DEFAULT_PROVIDER,
    BenchError,
    model_size_bytes,
    open_session,
    runtime_for,
    sha256_file,
)
from edgeshrink.bench.timing import (
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    CpuMeter,
    summarize,
    time_interleaved,
)

__all__ = [
    "BenchOptions",
    "bench_model",
    "compare",
    "bench_fresh_process",
    "peak_memory_fresh_process",
    "SCHEMA",
    "COMPARE_SCHEMA",
]

SCHEMA = "edgeshrink.bench/1"
COMPARE_SCHEMA = "edgeshrink.bench-compare/1"


@dataclass(frozen=True)
class BenchOptions:
    """How to benchmark: threads, warm-up, timed runs or a time budget, inputs, provider.

    Attributes:
        threads: the runtime's threads (ONNX Runtime intra-op threads, LiteRT's and
            ExecuTorch's thread pool; 0 = the runtime's default).
        warmup: untimed runs before timing.
        runs: timed runs; with ``budget_s`` also set, the upper bound.
        budget_s: time budget in seconds for the timed runs (``runs`` may then be None).
        batch: axis 0 of generated inputs whose first dimension is dynamic (default 1).
        inputs: an .npz file with the inputs; None generates them from declared shapes.
        dims: values for dynamic dimensions, ``{"seq": 128}`` or ``{"input.1": 128}``.
        provider: ONNX Runtime execution provider (``.onnx`` files only).
        seed: seed of the generated inputs.

    Example:
        >>> BenchOptions(threads=2, runs=50).threads
        2
    """

    threads: int = 1
    warmup: int = DEFAULT_WARMUP
    runs: int | None = DEFAULT_RUNS
    budget_s: float | None = None
    batch: int | None = None
    inputs: str | None = None
    dims: dict[str, int] = field(default_factory=dict)
    provider: str = DEFAULT_PROVIDER
    seed: int = 0

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise BenchError(
                f"threads must be >= 0 (0 = the runtime's default), got {self.threads}."
            )
        if self.warmup < 0:
            raise BenchError(f"warm-up runs must be >= 0, got {self.warmup}.")
        if self.runs is None and self.budget_s is None:
            raise BenchError("give a number of timed runs (--runs) or a time budget (--budget).")
        if self.runs is not None and self.runs < 1:
            raise BenchError(f"timed runs must be >= 1, got {self.runs}.")
        if self.budget_s is not None and not 0 < self.budget_s < float("inf"):
            raise BenchError(f"the time budget must be > 0 seconds, got {self.budget_s}.")
        if self.batch is not None and self.batch < 1:
            raise BenchError(f"batch must be >= 1, got {self.batch}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_argv(self) -> list[str]:
        """The ``python -m edgeshrink.bench`` arguments that reproduce these options."""
        argv = ["--threads", str(self.threads), "--warmup", str(self.warmup)]
        argv += ["--runs", str(self.runs)] if self.runs is not None else []
        argv += ["--budget", str(self.budget_s)] if self.budget_s is not None else []
        argv += ["--batch", str(self.batch)] if self.batch is not None else []
        argv += ["--inputs", str(self.inputs)] if self.inputs else []
        for name, value in self.dims.items():
            argv += ["--dim", f"{name}={value}"]
        argv += ["--provider", self.provider, "--seed", str(self.seed)]
        return argv


def _feeds_for(session, options: BenchOptions) -> dict[str, np.ndarray]:
    specs = input_specs(session)
    if options.inputs:
        return load_npz_feeds(options.inputs, specs, batch=options.batch)
    return generate_feeds(specs, batch=options.batch, dims=options.dims, seed=options.seed)


def _first_inference_ms(session, feeds: dict[str, np.ndarray], path: Path) -> float:
    t0 = time.perf_counter()
    try:
        session.run(None, feeds)
    except Exception as exc:  # ORT's pybind exceptions: wrong shapes, inconsistent dims
        msg = " ".join(str(exc).split())[:200]
        raise BenchError(
            f"{path.name} rejected its inputs on the first run ({msg}); check --inputs/--dim."
        ) from None
    return (time.perf_counter() - t0) * 1e3


def _model_info(path: Path, session) -> dict[str, Any]:
    return {
        "path": str(path),
        "name": path.name,
        "runtime": runtime_for(path).name,
        "sha256": sha256_file(path),
        "size_bytes": model_size_bytes(path),
        "inputs": [s.to_dict() for s in input_specs(session)],
        "outputs": [
            {"name": o.name, "shape": list(o.shape), "type": o.type} for o in session.get_outputs()
        ],
    }


def _open_timed(path: Path, options: BenchOptions) -> tuple[Any, float]:
    t0 = time.perf_counter()
    session = open_session(path, threads=options.threads, provider=options.provider)
    return session, (time.perf_counter() - t0) * 1e3


def _header(options: BenchOptions, paths: list[Path]) -> dict[str, Any]:
    """Date, options, machine and versions; ``runtimes``: each runtime the files ran in
    (name, package, version), in order of first use."""
    runtimes = list(dict.fromkeys(runtime_for(p) for p in paths))
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "options": options.to_dict(),
        "machine": machine_info(),
        "runtimes": [rt.info() for rt in runtimes],
        "versions": versions(runtimes),
    }


def bench_model(path: str | os.PathLike, options: BenchOptions | None = None) -> dict[str, Any]:
    """Benchmark one model in this process: the report ``edgeshrink bench --json`` prints.

    Figures: model load time, first-inference time, latency min/mean/p50/p90/p99/max (ms),
    throughput (samples/s), peak resident memory of this process (MiB) and its resident
    memory before the model was loaded, CPU use while timing, model size and sha256.

    Example:
        >>> report = bench_model("model.onnx", BenchOptions(threads=1, runs=50))  # doctest: +SKIP
        >>> report["latency_ms"]["p50"]  # doctest: +SKIP
        1.93
    """
    options, path = options or BenchOptions(), Path(path)
    rss_before = current_rss_mb()
    session, load_ms = _open_timed(path, options)
    feeds = _feeds_for(session, options)
    first_ms = _first_inference_ms(session, feeds, path)
    batch = feeds_batch(feeds)
    with CpuMeter() as cpu:
        samples = time_interleaved(
            {"model": lambda: session.run(None, feeds)},
            warmup=options.warmup,
            runs=options.runs,
            budget_s=options.budget_s,
        )["model"]
    stats = summarize(samples, batch=batch)
    peak, peak_source = peak_rss_mb()
    header = _header(options, [path])
    return {
        "schema": SCHEMA,
        **header,
        "runtime": header["runtimes"][0],
        "model": _model_info(path, session),
        "batch": batch,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "latency_ms": {k: v for k, v in stats.items() if k != "throughput_per_s"},
        "throughput_per_s": stats["throughput_per_s"],
        "peak_rss_mb": peak,
        "peak_rss_source": peak_source,
        "rss_before_load_mb": rss_before,
        **cpu.result(),
    }


def _ratios(reports: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    base = reports[0]
    out = {}
    for rep in reports[1:]:
        key = f"{rep['label']}/{base['label']}"
        out[key] = {
            **{
                q: rep["latency_ms"][q] / base["latency_ms"][q]
                for q in ("p50", "mean", "p90", "min")
            },
            "size": rep["model"]["size_bytes"] / base["model"]["size_bytes"],
        }
    return out


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def compare(paths: list[str | os.PathLike], options: BenchOptions | None = None) -> dict[str, Any]:
    """Time several models interleaved (A B, B A, ...) in one process and give ratios.

    Ratios are each model's over the first model's (``"b.onnx/a.onnx": {"p50": 0.41, ...}``):
    below 1 means faster or smaller than the first. Each model gets its own inputs, made
    from its own declared shapes (or the same .npz).

    Example:
        >>> out = compare(["fp32.onnx", "int8.onnx"], BenchOptions(runs=100))  # doctest: +SKIP
        >>> out["ratios"]["int8.onnx/fp32.onnx"]["p50"]  # doctest: +SKIP
        0.38
    """
    options = options or BenchOptions()
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise BenchError("--compare needs at least two models.")
    labels, opened = _labels(paths), []
    for path in paths:
        session, load_ms = _open_timed(path, options)
        feeds = _feeds_for(session, options)
        opened.append((path, session, feeds, load_ms, _first_inference_ms(session, feeds, path)))
    fns = {
        lab: (lambda s=s, f=f: s.run(None, f))
        for lab, (_, s, f, _, _) in zip(labels, opened, strict=True)
    }
    with CpuMeter() as cpu:
        samples = time_interleaved(
            fns, warmup=options.warmup, runs=options.runs, budget_s=options.budget_s
        )
    reports = []
    for label, (path, session, feeds, load_ms, first_ms) in zip(labels, opened, strict=True):
        stats = summarize(samples[label], batch=feeds_batch(feeds))
        reports.append(
            {
                "label": label,
                "model": _model_info(path, session),
                "batch": feeds_batch(feeds),
                "load_ms": load_ms,
                "first_inference_ms": first_ms,
                "latency_ms": {k: v for k, v in stats.items() if k != "throughput_per_s"},
                "throughput_per_s": stats["throughput_per_s"],
            }
        )
    peak, peak_source = peak_rss_mb()
    return {
        "schema": COMPARE_SCHEMA,
        **_header(options, paths),
        "models": reports,
        "ratios": _ratios(reports),
        "peak_rss_mb": peak,
        "peak_rss_source": peak_source,
        **cpu.result(),
    }


def bench_fresh_process(
    path: str | os.PathLike,
    options: BenchOptions | None = None,
    *,
    feeds: dict[str, np.ndarray] | None = None,
    python: str | None = None,
    timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Run ``python -m edgeshrink.bench --json`` on ``path`` in a new process; its report.

    The report's ``peak_rss_mb`` is the high-water mark of a process that did nothing but
    import numpy and the model's runtime, load the model and run it: the memory a device owner
    will see, unlike an RSS delta inside a warm process that already holds arenas, caches
    and freed pages.

    Args:
        feeds: inputs to use (written to a temporary .npz); default: ``options.inputs`` or
            generated from the declared shapes.
        python: interpreter to run (default: this one).
    """
    from edgeshrink.bench.fresh import INPUTS, run_fresh

    options = options or BenchOptions(warmup=1, runs=5)
    if feeds is not None:
        options = dataclasses.replace(options, inputs=INPUTS, dims={})

    def fail(code: int, last: str) -> Exception:
        if code == 2:
            return BenchError(last.removeprefix("error: "))
        return RuntimeError(f"edgeshrink.bench exited with {code}: {last}")

    return run_fresh(["-m", "edgeshrink.bench", str(path), "--json", *options.to_argv()],
                     feeds, fail=fail, python=python, timeout_s=timeout_s)


def peak_memory_fresh_process(
    path: str | os.PathLike,
    feeds: dict[str, np.ndarray] | None = None,
    *,
    threads: int = 1,
    runs: int = 5,
    options: BenchOptions | None = None,
) -> float:
    """Peak resident memory (MiB) of a fresh process that loads ``path`` and runs it.

    Example:
        >>> peak_memory_fresh_process("model.onnx", threads=1)  # doctest: +SKIP
        61.4
    """
    options = options or BenchOptions(threads=threads, warmup=1, runs=runs)
    return float(bench_fresh_process(path, options, feeds=feeds)["peak_rss_mb"])
