"""Timing: interleaved runs of several callables, summary statistics, CPU accounting.

Why interleave: on a shared machine the same code's latency drifts by up to 2x between
runs (FIELD-NOTES "Measuring"). Timing A and B in alternation (A B B A A B ...) exposes
both to the same drift, so their *ratio* is stable even when absolute figures are not.

Why in blocks, after a settling period: an ONNX Runtime session's intra-op threads keep
spinning for a while after each run. Alternating *single calls* of several sessions made
each call compete with the previous session's spinning threads: on 2 cores MiniLM's FP32
p50 read 42-50 ms instead of 22 ms and the ratios moved by up to 0.23 (an outlier-split
INT8 model read 0.81x FP32 per call, 0.58x in blocks; both 0.58-0.65x with spinning off).
So each visit first runs the variant untimed for ``settle_s`` (the other sessions' threads
go idle), then times ``block`` calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.bench.session import BenchError, open_session

__all__ = [
    "time_interleaved",
    "summarize",
    "measure_latency",
    "CpuMeter",
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "DEFAULT_BLOCK",
    "DEFAULT_SETTLE_S",
    "CONTENDED_CORES",
]

DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10
DEFAULT_BLOCK = 5
DEFAULT_SETTLE_S = 0.1
_MIN_ROUNDS_IN_BUDGET = 3
_MIN_WALL_FOR_OTHERS_S = 0.2
# FIELD-NOTES "Measuring": repeat a timing if others used more than ~10 % of a core.
CONTENDED_CORES = 0.1


def _check_counts(warmup: int, runs: int | None, budget_s: float | None) -> None:
    if warmup < 0:
        raise BenchError(f"warm-up runs must be >= 0, got {warmup}.")
    if runs is not None and runs < 1:
        raise BenchError(f"timed runs must be >= 1, got {runs}.")
    if budget_s is not None and budget_s <= 0:
        raise BenchError(f"the time budget must be > 0 seconds, got {budget_s}.")


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = DEFAULT_WARMUP,
    runs: int | None = DEFAULT_RUNS,
    budget_s: float | None = None,
    block: int = DEFAULT_BLOCK,
    settle_s: float = DEFAULT_SETTLE_S,
) -> dict[str, list[float]]:
    """Time every function in alternating visits; each visit settles, then times a block.

    Visits go A B, B A, A B, ... so that neither variant always follows the other. A
    visit runs the function untimed for ``settle_s`` seconds (at least once; skipped with
    a single function or ``settle_s=0``: see the module docstring), then times ``block``
    calls. It stops after ``runs`` timed calls per function or once ``budget_s`` seconds
    have passed (at least 3 visits each), whichever comes first; ``runs=None`` means
    budget only.

    Returns:
        ``{name: [milliseconds per call, ...]}``.

    Example:
        >>> samples = time_interleaved({"a": lambda: None, "b": lambda: None}, runs=5)
        >>> [len(v) for v in samples.values()]
        [5, 5]
    """
    _check_counts(warmup, runs, budget_s)
    if runs is None and budget_s is None:
        raise BenchError("give a number of timed runs or a time budget.")
    if block < 1 or settle_s < 0:
        raise BenchError(f"block must be >= 1 and settle_s >= 0, got {block} and {settle_s}.")
    names = list(fns)
    settle_s = settle_s if len(names) > 1 else 0.0
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    clock, start, rounds = time.perf_counter, time.perf_counter(), 0
    while runs is None or len(samples[names[0]]) < runs:
        for name in names if rounds % 2 == 0 else reversed(names):
            fn, out = fns[name], samples[name]
            t_settle = clock()
            while settle_s and clock() - t_settle < settle_s:
                fn()
            for _ in range(block if runs is None else min(block, runs - len(out))):
                t0 = clock()
                fn()
                out.append((clock() - t0) * 1e3)
        rounds += 1
        if budget_s is not None and rounds >= _MIN_ROUNDS_IN_BUDGET and clock() - start >= budget_s:
            break
    return samples


def summarize(samples_ms: list[float], *, batch: int = 1) -> dict[str, float]:
    """min / mean / p50 / p90 / p99 / max / std of latencies (ms), and samples per second.

    Percentiles interpolate linearly between order statistics (numpy's default).

    Example:
        >>> summarize([1.0, 2.0, 3.0])["p50"]
        2.0
    """
    if not samples_ms:
        raise ValueError("summarize() needs at least one sample")
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    mean = float(a.mean())
    return {
        "count": int(a.size),
        "min": float(a.min()),
        "mean": mean,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
        "std": float(a.std()),
        "throughput_per_s": batch * 1e3 / mean if mean > 0 else float("inf"),
    }


def _proc_stat_busy_s() -> float | None:
    """Seconds of non-idle CPU time of the whole machine since boot (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use while a block runs: this process's (top-style %, 100 = one core busy) and
    other processes' (in cores, from /proc/stat where it exists).

    FIELD-NOTES: repeat a timing if others used more than ~10 % of a core meanwhile.

    Example:
        >>> with CpuMeter() as cpu:
        ...     _ = sum(range(10_000))
        >>> cpu.result()["cpu_percent"] >= 0
        True
    """

    def __enter__(self) -> CpuMeter:
        self._t0, self._cpu0, self._busy0 = time.perf_counter(), _own_cpu_s(), _proc_stat_busy_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self._t1, self._cpu1, self._busy1 = time.perf_counter(), _own_cpu_s(), _proc_stat_busy_s()

    def result(self) -> dict[str, float | None]:
        wall = max(self._t1 - self._t0, 1e-9)
        own = self._cpu1 - self._cpu0
        others = None
        # /proc/stat counts 10 ms ticks: below ~0.2 s of wall time the figure is noise.
        if self._busy0 is not None and self._busy1 is not None and wall >= _MIN_WALL_FOR_OTHERS_S:
            others = max(0.0, (self._busy1 - self._busy0 - own) / wall)
        return {
            "cpu_percent": 100.0 * own / wall,
            "others_cpu_cores": others,
            "contended": others is not None and others > CONTENDED_CORES,
            "wall_s": wall,
        }


def _own_cpu_s() -> float:
    return time.process_time()  # all threads of this process, ns resolution (not os.times)


def measure_latency(
    model: str | os.PathLike | Any,
    feeds: dict[str, np.ndarray],
    *,
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int | None = DEFAULT_RUNS,
    budget_s: float | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """Latency statistics (ms) of one model in ONNX Runtime, with CPU use while timing.

    Args:
        model: a path to an .onnx file (opened with ``threads`` intra-op threads) or an
            existing ``InferenceSession`` (``threads`` is then only recorded).
        feeds: ``{input name: array}``, e.g. from :func:`generate_feeds`.
        batch: samples per call for the throughput figure (default: axis 0 of the feeds).

    Example:
        >>> sess = open_session("model.onnx")  # doctest: +SKIP
        >>> measure_latency(sess, generate_feeds(input_specs(sess)), runs=50)["p50"]  # doctest: +SKIP
        1.93
    """
    from edgeshrink.bench.inputs import feeds_batch

    session = open_session(model, threads=threads) if isinstance(model, str | Path) else model
    with CpuMeter() as cpu:
        samples = time_interleaved(
            {"model": lambda: session.run(None, feeds)},
            warmup=warmup,
            runs=runs,
            budget_s=budget_s,
        )["model"]
    stats = summarize(samples, batch=batch or feeds_batch(feeds))
    stats.update(cpu.result(), threads=threads, warmup=warmup)
    return stats
