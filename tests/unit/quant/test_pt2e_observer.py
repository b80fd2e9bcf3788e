"""RangeObserver: our calibrators behind torchao's PT2E observer interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torchao")

from edgeshrink.quant.calibrate import TensorStats, calibrate_range  # noqa: E402
from edgeshrink.quant.pt2e_observer import RangeObserver  # noqa: E402


def _observe(ctor, batches):
    obs = ctor()
    for b in batches:
        obs(b)
    return obs.calculate_qparams()


def test_percentile_clips_an_outlier_that_minmax_keeps():
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(rng.standard_normal(4096).astype(np.float32)) for _ in range(4)]
    batches[2][7] = 60.0  # one outlier
    kw = {"dtype": torch.qint8, "qscheme": torch.per_tensor_affine, "quant_min": -128,
          "quant_max": 127}  # fmt: skip
    s_mm, _ = _observe(RangeObserver.with_args(method="minmax", **kw), batches)
    s_pc, _ = _observe(RangeObserver.with_args(method="percentile", **kw), batches)
    lo, hi = float(torch.cat(batches).min()), 60.0
    assert float(s_mm) == pytest.approx((hi - lo) / 255, rel=1e-5)  # exact extremes kept
    assert float(s_pc) < 0.2 * float(s_mm)
    # the same range our calibrator picks on the same values (all kept: under max_values)
    ref_lo, ref_hi = calibrate_range(TensorStats.from_array(torch.cat(batches).numpy()),
                                     "percentile")
    assert float(s_pc) == pytest.approx((ref_hi - ref_lo) / 255, rel=0.02)
