"""Bias correction of a QDQ file: output mean error against FP32 shrinks, ints stay int32."""

from __future__ import annotations

import numpy as np
import onnx
import torch

from edgeshrink.export import ort_session, run_onnx
from edgeshrink.quant import StaticInt8Config, quantize


def _mean_shift(task, path) -> float:
    x = task.eval.inputs[0]
    got = run_onnx(ort_session(path, 1), (x,))
    with torch.no_grad():
        ref = task.model(torch.from_numpy(x)).numpy()
    return float(np.abs((got - ref).mean(0)).mean())


def test_bias_correction_removes_the_mean_shift(tiny, tmp_path):
    shifts, biases = {}, {}
    for bc in (False, True):
        cfg = StaticInt8Config(calibrator="mse", per_channel=False, bias_correction=bc,
                               calibration_samples=64)
        art = quantize(tiny.model, cfg, tiny.calibration, workdir=tmp_path, name=f"b{bc}")
        shifts[bc] = _mean_shift(tiny, art.path)
        g = onnx.load(str(art.path)).graph
        biases[bc] = sorted(t.name for t in g.initializer if t.data_type == onnx.TensorProto.INT32)
        assert art.notes["bias_correction"] is bc
    assert biases[True] == biases[False]  # same int32 tensors, rewritten in place
    assert shifts[True] < 0.7 * shifts[False], shifts
