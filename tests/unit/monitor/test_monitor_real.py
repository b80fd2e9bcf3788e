"""The monitor on a real model and real data: LeNet-5 on sklearn's 8x8 digits, exported to
ONNX. Unseen clean digits raise nothing; noisy or brighter ones are caught within 500."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshrink.monitor import Calibration, Monitor, build_profile


@pytest.fixture(scope="module")
def digits(digits_task, tmp_path_factory):
    import torch

    from edgeshrink.bench import open_session
    from edgeshrink.export import export_onnx

    path = tmp_path_factory.mktemp("digits") / "lenet.onnx"
    export_onnx(digits_task.model, (torch.from_numpy(digits_task.eval.inputs[0][:1]),), path)
    cal = Calibration(window=100, step=20, horizon=2000, fa_rate=0.05, streams=100)
    prof = build_profile(path, digits_task.eval.inputs[0], digits_task.eval.targets,
                         calibration=cal)
    sess = open_session(path)
    run = lambda x: sess.run(None, {sess.get_inputs()[0].name: x})[0]  # noqa: E731
    return prof, run, digits_task.calibration.inputs[0], digits_task.calibration.targets


def _first_drift(prof, outputs, labels):
    mon = Monitor(prof)
    for s in range(0, len(outputs), 20):
        for a in mon.observe(outputs[s:s + 20], labels=labels[s:s + 20]):
            if a["alert"] == "drift":
                return a["samples"]
    return None


@pytest.mark.parametrize("shift", ["noise", "brightness"])
def test_real_digits_clean_is_quiet_and_shift_is_caught(digits, shift):
    prof, run, x, y = digits  # the calibration digits: never trained on, not in the profile
    rng = np.random.default_rng(0)
    clean_idx = rng.choice(len(y), 600)
    shifted = rng.choice(len(y), 600)
    xs = x[shifted] + (rng.normal(0, 0.4, x[shifted].shape) if shift == "noise" else 0.5)
    xs = np.clip(xs, 0, 1).astype(np.float32)
    outs = np.concatenate([run(x[clean_idx]), run(xs)])
    labels = np.concatenate([y[clean_idx], y[shifted]])
    acc_clean = np.mean(outs[:600].argmax(1) == labels[:600])
    acc_shift = np.mean(outs[600:].argmax(1) == labels[600:])
    assert acc_clean - acc_shift >= 0.05  # the shift really costs accuracy
    at = _first_drift(prof, outs, labels)
    assert at is not None and 600 < at <= 600 + 500, at
