"""Timing: statistics against numpy, the interleaving order, budgets, CPU accounting."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from edgeshrink.bench import BenchError, CpuMeter, summarize, time_interleaved


def test_summarize_matches_numpy_reference():
    rng = np.random.default_rng(0)
    samples = list(rng.gamma(2.0, 1.5, size=501))
    s = summarize(samples, batch=4)
    assert s["count"] == 501
    assert s["p50"] == pytest.approx(np.median(samples))
    assert s["p90"] == pytest.approx(np.percentile(samples, 90))
    assert s["p99"] == pytest.approx(np.percentile(samples, 99))
    assert (s["min"], s["max"]) == (min(samples), max(samples))
    assert s["throughput_per_s"] == pytest.approx(4 * 1000 / np.mean(samples))


def test_rounds_alternate_order_abba():
    calls: list[str] = []
    samples = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, runs=4,
        block=1, settle_s=0,
    )
    assert "".join(calls) == "ab" + "abbaabba"  # one warm-up round, then A B, B A, ...
    assert [len(v) for v in samples.values()] == [4, 4]


def test_visits_time_a_block_after_untimed_settling():
    calls: list[str] = []

    def fn(name):
        def run():
            calls.append(name)
            time.sleep(0.001)
        return run

    samples = time_interleaved({"a": fn("a"), "b": fn("b")}, warmup=0, runs=5, block=3,
                               settle_s=0.004)  # fmt: skip
    assert [len(v) for v in samples.values()] == [5, 5]  # 3 + 2: the last block is cut
    text = "".join(calls)
    # visits alternate a, b, b, a and each one starts with untimed settling calls
    runs = [(c, len(list(g))) for c, g in itertools.groupby(text)]
    assert [c for c, _ in runs] == ["a", "b", "a"]  # b's two visits are adjacent (B A order)
    # each visit settles with at least one untimed call (a loaded machine may fit only one
    # sleep in settle_s), and those calls are not samples: a ran 5 timed + >= 2 settling
    assert runs[0][1] >= 3 + 1 and text.count("a") >= 5 + 2


def test_single_function_does_not_settle():
    calls: list[int] = []
    time_interleaved({"x": lambda: calls.append(1)}, warmup=0, runs=7, settle_s=1.0)
    assert len(calls) == 7


def test_samples_are_milliseconds():
    s = time_interleaved({"sleep": lambda: time.sleep(0.002)}, warmup=0, runs=3)["sleep"]
    assert all(1.9 <= x < 50 for x in s)


def test_budget_stops_early_but_after_three_rounds():
    t0 = time.perf_counter()
    s = time_interleaved({"x": lambda: time.sleep(0.01)}, warmup=0, runs=None, budget_s=0.05,
                         block=1)
    assert 3 <= len(s["x"]) <= 8 and time.perf_counter() - t0 < 2.0
    capped = time_interleaved({"x": lambda: None}, warmup=0, runs=5, budget_s=60)
    assert len(capped["x"]) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"warmup": -1}, "warm-up"), ({"runs": 0}, "timed runs"), ({"runs": None}, "time budget"),
     ({"block": 0}, "block"), ({"settle_s": -1}, "settle_s")],
)
def test_bad_counts(kwargs, message):
    with pytest.raises(BenchError, match=message):
        time_interleaved({"x": lambda: None}, **kwargs)


def test_cpu_meter_tells_a_busy_loop_from_sleep():
    with CpuMeter() as busy:
        end = time.perf_counter() + 0.25
        while time.perf_counter() < end:
            pass
    with CpuMeter() as idle:
        time.sleep(0.25)
    # One busy thread: at most one core (top-style 100 %); at least a fair share of it even
    # on a shared 2-core machine. A sleeping thread uses almost nothing.
    assert 5 <= busy.result()["cpu_percent"] <= 110
    assert idle.result()["cpu_percent"] < 5
    assert busy.result()["cpu_percent"] > 2 * idle.result()["cpu_percent"] + 3
    assert busy.result()["others_cpu_cores"] is None or busy.result()["others_cpu_cores"] >= 0
