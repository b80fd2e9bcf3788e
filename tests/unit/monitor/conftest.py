"""Fixtures: a tiny ONNX classifier (see monitor_models.py) and a profile of it."""

from __future__ import annotations

import numpy as np
import pytest
from monitor_models import inputs, make_classifier


@pytest.fixture(scope="session")
def clf(tmp_path_factory) -> dict:
    """The model, a labelled eval set (labels = its own predictions, 10 % flipped), and a
    profile calibrated for a short horizon (fast)."""
    from edgeshrink.monitor import Calibration, build_profile

    d = tmp_path_factory.mktemp("clf")
    model = make_classifier(d / "model.onnx")
    x = inputs(2000, seed=1)
    w = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    y = (x @ w).argmax(1)
    flip = np.random.default_rng(2).random(2000) < 0.1
    y[flip] = (y[flip] + 1) % 5
    cal = Calibration(window=100, step=20, horizon=2000, fa_rate=0.05, streams=150)
    prof = build_profile(model, x, y, calibration=cal)
    path = prof.save(d / "profile.json")
    return {"model": model, "profile": path, "dir": d, "w": w}
