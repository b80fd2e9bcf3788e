"""Calibrators against straightforward references on synthetic distributions."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.errors import UserError
from edgeshrink.quant.calibrate import (
    TensorStats,
    calibrate_range,
    entropy_range,
    mean_minmax_range,
    minmax_range,
    percentile_range,
    quant_mse,
)

RNG = np.random.default_rng(0)
HEAVY = RNG.standard_t(3, size=200_000)  # heavy tails: outliers far beyond the bulk
RELU = np.maximum(RNG.standard_normal(200_000) * 2 + 0.5, 0)


def test_minmax_is_the_extremes():
    s = TensorStats.from_array(HEAVY)
    assert minmax_range(s) == (HEAVY.min(), HEAVY.max())


def test_mean_minmax_is_the_mean_of_per_sample_extremes():
    x = RNG.standard_normal((50, 3, 8, 8))
    x[7, 0, 0, 0] = 40.0  # one sample with an outlier moves the range by 1/50 of it
    lo, hi = mean_minmax_range(TensorStats.from_array(x))
    flat = x.reshape(50, -1)
    assert hi == pytest.approx(flat.max(1).mean()) and lo == pytest.approx(flat.min(1).mean())
    assert hi < 0.25 * x.max()


@pytest.mark.parametrize("data", [HEAVY, RELU])
def test_percentile_matches_numpy_within_a_bin(data):
    s = TensorStats.from_array(data)
    width = (s.edge1 - s.edge0) / len(s.counts)
    lo, hi = percentile_range(s, 99.9)
    assert hi == pytest.approx(np.percentile(data, 99.9), abs=width)
    expected_lo = np.percentile(data, 0.1) if data.min() < 0 else 0.0
    assert lo == pytest.approx(expected_lo, abs=width)


def test_entropy_clips_heavy_tail_and_differs_from_minmax():
    s = TensorStats.from_array(HEAVY)
    lo, hi = entropy_range(s, symmetric=True)
    assert hi == -lo
    assert 1.0 < hi < 0.5 * HEAVY.max()
    lo2, hi2 = entropy_range(TensorStats.from_array(RELU))
    assert lo2 == 0.0 and hi2 < RELU.max()


def test_entropy_ignores_the_zero_spike():
    # Half the values exactly 0 (ReLU): without removing the spike KL picks a tiny range.
    data = np.concatenate([np.zeros(100_000), np.abs(RNG.standard_normal(100_000))])
    _, hi = entropy_range(TensorStats.from_array(data))
    assert hi > 2.5


@pytest.mark.parametrize("data", [HEAVY, RELU])
def test_mse_range_is_as_good_as_brute_force(data):
    s = TensorStats.from_array(data)
    lo, hi = calibrate_range(s, "mse")
    lo0, hi0 = minmax_range(s)
    grid = [quant_mse(data, None, lo0 * a, hi0 * a) for a in np.linspace(0.005, 1, 200)]
    assert quant_mse(data, None, lo, hi) <= min(grid) * 1.05
    if data is HEAVY:
        assert quant_mse(data, None, lo, hi) < 0.9 * grid[-1]  # beats min-max clearly


def test_calibrators_really_differ():
    s = TensorStats.from_array(HEAVY)
    ranges = {m: calibrate_range(s, m) for m in ("minmax", "percentile", "entropy", "mse")}
    assert len({tuple(np.round(r, 4)) for r in ranges.values()}) == 4


def test_unknown_calibrator_is_a_user_error():
    with pytest.raises(UserError, match="calibrator"):
        calibrate_range(TensorStats.from_array(HEAVY), "kmeans")


def test_affine_entropy_range_reaches_past_zero():
    # Signed, mostly negative with a long positive tail (a projection conv's output): the
    # KL search must not pick a threshold below zero, which would clip every positive value.
    data = np.concatenate([-np.abs(RNG.standard_normal(150_000)) * 0.5,
                           np.abs(RNG.standard_t(3, 50_000))])  # fmt: skip
    lo, hi = entropy_range(TensorStats.from_array(data))
    assert lo == pytest.approx(data.min()) and hi > 1.0


def test_entropy_reaches_past_the_spikes_of_a_constant_background():
    # ResNet-20/MNIST's stem after ReLU: half exact zeros, and half of the rest in six
    # repeated values (the constant background through each channel). KL put the threshold
    # just above the spikes and clipped the values that carry the digits (97.6 % -> 29.6 %).
    digits = np.abs(RNG.standard_normal(60_000))
    spikes = np.repeat([0.30, 0.33, 0.36, 0.38, 0.40, 0.41], 8_000)
    data = np.concatenate([np.zeros(120_000), spikes, digits])
    _, hi = entropy_range(TensorStats.from_array(data))
    assert hi > np.percentile(digits, 99)
    # a smooth distribution is unchanged by the spike handling: still clips its tail
    _, hi2 = entropy_range(TensorStats.from_array(RELU))
    assert hi2 < 0.9 * RELU.max()


def test_a_spike_at_the_top_is_never_clipped():
    # ReLU6 saturating: many values exactly 6.0 must stay representable
    data = np.concatenate([np.abs(RNG.standard_normal(100_000)), np.full(20_000, 6.0)])
    _, hi = entropy_range(TensorStats.from_array(data))
    assert hi == pytest.approx(6.0)
