"""Intervals over evaluation samples: exact where the maths allows, paired, persisted."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.measure.intervals import (
    compare,
    drop_interval,
    load_scores,
    metric_interval,
    per_sample_scores,
    record_intervals,
    save_scores,
)
from edgeshrink.task import Metric, accuracy_metric


def _pair(n: int, b: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline right on 90 %; the candidate loses ``b`` of those and wins ``c`` others."""
    base = np.zeros(n)
    base[: int(0.9 * n)] = 100.0
    cand = base.copy()
    cand[:b] = 0.0
    cand[n - c:] = 100.0
    return base, cand


def test_clopper_pearson_matches_the_reference_values():
    scores = np.array([100.0] * 90 + [0.0] * 10)
    ci = metric_interval(scores)
    # R: binom.test(90, 100)$conf.int = 0.8237774 0.9509953
    assert ci["ci95"] == pytest.approx([82.37774, 95.09953], abs=1e-4)
    assert ci["interval"] == "exact Clopper-Pearson" and ci["n"] == 100


def test_paired_drop_interval_and_exact_mcnemar():
    base, cand = _pair(1000, 6, 0)  # 0.6 points lost on 6 discordant samples
    got = drop_interval(base, cand)
    assert got["test"] == "exact McNemar"
    assert got["drop_p"] == pytest.approx(2 * 0.5**6)  # all 6 discordant one way
    lo, hi = got["drop_ci95"]
    assert 0.0 < lo < 0.6 < hi < 1.5
    # 4 lost, 2 gained: 0.2 points, indistinguishable
    base, cand = _pair(1000, 4, 2)
    assert compare(base, cand) == pytest.approx(0.6875)  # binomtest(4, 6)
    lo, hi = drop_interval(base, cand)["drop_ci95"]
    assert lo < 0 < hi


def test_continuous_scores_use_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.9, 1.0, 500)
    cand = base - rng.normal(0.01, 0.002, 500)  # each sample 0.01 worse: clearly distinguishable
    got = drop_interval(base, cand)
    assert got["test"] == "paired bootstrap" and got["drop_p"] < 0.01
    assert got["drop_ci95"][0] == pytest.approx(0.01, abs=0.001)
    unpaired_width = 2 * 1.96 * np.sqrt(2 * base.var() / 500)
    assert got["drop_ci95"][1] - got["drop_ci95"][0] < unpaired_width / 10  # pairing pays


def test_per_sample_scores_only_for_mean_metrics():
    out = np.eye(4)[[0, 1, 2, 3, 0]]
    y = np.array([0, 1, 2, 0, 0])
    assert per_sample_scores(accuracy_metric, out, y).tolist() == [100, 100, 100, 0, 100]
    first_only = Metric("odd", lambda o, t: float(o[0, 0]))  # not a mean over samples
    assert per_sample_scores(first_only, out, y) is None


def test_scores_round_trip_compactly(tmp_path):
    bits = np.array([100.0, 0.0] * 5000)
    save_scores(tmp_path / "a.npz", bits)
    assert (tmp_path / "a.npz").stat().st_size < 2_000
    assert np.array_equal(load_scores(tmp_path / "a.npz"), bits)
    floats = np.linspace(0, 1, 33)
    save_scores(tmp_path / "b.npz", floats)
    assert np.array_equal(load_scores(tmp_path / "b.npz"), floats)
    assert load_scores(tmp_path / "missing.npz") is None


def test_record_intervals_pairs_with_the_stored_baseline(tmp_path):
    base, cand = _pair(1000, 6, 0)
    first = record_intervals(tmp_path, "baseline", base, baseline=None)
    assert first["drop_ci95"] == [0.0, 0.0] and first["samples"] == "samples/baseline.npz"
    rec = record_intervals(tmp_path, "int8", cand, baseline="baseline")
    assert rec["drop_test"] == "exact McNemar" and rec["drop_ci95"][0] > 0
    assert record_intervals(tmp_path, "x", None, baseline="baseline") == {}


def test_no_changed_sample_still_leaves_an_honest_interval():
    base, _ = _pair(1000, 0, 0)
    lo, hi = drop_interval(base, base.copy())["drop_ci95"]
    assert lo == pytest.approx(-hi) and 0.2 < hi < 0.6  # not [0, 0]: 1000 samples say little


def test_paired_interval_covers_the_true_drop_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered, trials = 0, 300
    for _ in range(trials):  # baseline right 95 %, 2 % of samples flip to wrong, 1 % to right
        u = rng.random(1000)
        base = np.where(u < 0.95, 100.0, 0.0)
        cand = base.copy()
        cand[(u < 0.02)] = 0.0
        cand[(u > 0.99)] = 100.0
        lo, hi = drop_interval(base, cand)["drop_ci95"]
        covered += lo <= 1.0 <= hi  # true drop: 2 % - 1 % = 1 point
    assert covered / trials >= 0.92, covered / trials
