"""The monitor's statistics against scipy or a straightforward reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as ss

from edgeshrink.monitor.calibrate import page_hinkley_lambda, stream_scores
from edgeshrink.monitor.drift import score, window_tests
from edgeshrink.monitor.stats import (
    PageHinkley,
    Sketch,
    chi2_homogeneity,
    chi2_sf,
    classifier_stats,
    ks_pvalue,
    ks_statistic,
    psi,
    wilson_interval,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_ks_statistic_equals_scipy_and_the_sketch_is_within_its_grid(shift):
    a, b = RNG.normal(shift, 1, 300), RNG.normal(0, 1, 3000)
    exact = ss.ks_2samp(a, b)
    assert ks_statistic(a, b) == pytest.approx(exact.statistic, abs=1e-12)
    assert abs(ks_statistic(a, Sketch.of(b)) - exact.statistic) <= 1 / 200 + 1e-9
    # ties (quantized outputs): still the exact statistic
    qa, qb = np.round(a, 1), np.round(b, 1)
    assert ks_statistic(qa, qb) == pytest.approx(ss.ks_2samp(qa, qb).statistic, abs=1e-12)
    assert abs(ks_statistic(qa, Sketch.of(qb)) - ss.ks_2samp(qa, qb).statistic) <= 0.01


def test_ks_pvalue_follows_scipys_asymptotic_one():
    for d in (0.05, 0.08, 0.12, 0.2):
        mine = ks_pvalue(d, 5000, 250)
        en = math.sqrt(5000 * 250 / 5250)
        ref = ss.kstwobign.sf((en + 0.12 + 0.11 / en) * d)  # same Stephens argument
        assert mine == pytest.approx(ref, rel=1e-6)
    assert ks_pvalue(0.001, 1000, 100) == 1.0


@pytest.mark.parametrize("df", [1, 4, 9, 30])
def test_chi2_sf_is_close_to_scipy_where_alarms_are_decided(df):
    for q in (0.5, 0.1, 0.01, 1e-3, 1e-5):
        x = ss.chi2.isf(q, df)
        # Wilson-Hilferty: a few per cent off at moderate p; at most a factor 3 far out
        assert abs(math.log10(chi2_sf(x, df)) - math.log10(q)) < (0.05 if q >= 0.01 else 0.5)


def test_chi2_homogeneity_is_pearsons_test_of_the_2xk_table():
    o = np.array([30, 20, 50, 0, 10])
    r = np.array([300, 250, 400, 5, 45])
    stat, df = chi2_homogeneity(o, r)
    ref = ss.chi2_contingency(np.vstack([o, r]), correction=False)
    assert stat == pytest.approx(ref.statistic, rel=1e-9) and df == ref.dof


def test_psi_equals_the_textbook_formula_on_reference_deciles():
    ref, win = RNG.normal(0, 1, 5000), RNG.normal(0.5, 1, 400)
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    e = np.histogram(ref, np.r_[-np.inf, edges, np.inf])[0].astype(float)
    a = np.histogram(win, np.r_[-np.inf, edges, np.inf])[0].astype(float)
    e, a = (e + 0.5) / (e.sum() + 5), (a + 0.5) / (a.sum() + 5)
    assert psi(win, Sketch.of(ref)) == pytest.approx(np.sum((a - e) * np.log(a / e)), rel=1e-9)
    assert psi(ref[:400], Sketch.of(ref)) < 0.05 < 0.25 < psi(win, Sketch.of(ref))


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # Wilson (1927), z = 1.96
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_classifier_stats_are_stable_where_float32_softmax_saturates():
    logits = np.array([[50.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0]], np.float32)
    conf, ent, cls = classifier_stats(logits)
    p = np.exp(logits[2] - logits[2].max()) / np.exp(logits[2] - logits[2].max()).sum()
    assert conf[0] == pytest.approx(50 - math.log(2), rel=1e-5)  # -log(1 - p_top)
    assert conf[2] == pytest.approx(-math.log(1 - p[0]), rel=1e-5)
    assert ent[1] == pytest.approx(math.log(3), rel=1e-6)
    assert ent[2] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-5)
    assert cls.tolist() == [0, 0, 0]


def test_page_hinkley_batch_update_equals_one_at_a_time_and_detects_a_drop():
    x = (RNG.random(3000) < np.r_[np.full(2000, 0.05), np.full(1000, 0.20)]).astype(float)
    ref = PageHinkley(delta=0.02, lam=15.0)
    fired_at = None
    for i, v in enumerate(x):  # the textbook recursion
        if ref.update(np.array([v])) and fired_at is None:
            fired_at = i
    batched = PageHinkley(delta=0.02, lam=15.0)
    flags = [batched.update(x[s:s + 50]) for s in range(0, 3000, 50)]
    assert batched.cum == pytest.approx(ref.cum) and batched.min_cum == pytest.approx(ref.min_cum)
    assert fired_at is not None and 2000 <= fired_at < 2400
    assert flags.index(True) == fired_at // 50


def test_page_hinkley_lambda_bounds_false_alarms():
    lam = page_hinkley_lambda(0.1, delta=0.02, horizon=2000, fa_rate=0.05, streams=400)
    rng = np.random.default_rng(1)
    alarms = sum(PageHinkley(delta=0.02, lam=lam).update(rng.random(2000) < 0.1)
                 for _ in range(200))
    assert alarms <= 0.05 * 200 + 4


def test_vectorised_stream_scores_equal_the_device_checks():
    logits = RNG.normal(size=(1200, 6)) * 3
    conf, ent, cls = classifier_stats(logits)
    sk = {"conf": Sketch.of(conf[:600]), "entropy": Sketch.of(ent[:600])}
    counts = np.bincount(cls[:600], minlength=6)
    cols = {"conf": conf[600:].astype(float), "entropy": ent[600:].astype(float)}
    fast = stream_scores(sk, counts, cols, cls[600:].astype(np.int64), window=100, step=20)
    slow = [score(window_tests(sk, counts, {k: v[e - 100:e] for k, v in cols.items()},
                               cls[600:][e - 100:e]))[0] for e in range(100, 601, 20)]
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
