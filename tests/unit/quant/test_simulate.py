"""Every deployed quantized candidate: ONNX Runtime and the PyTorch simulation agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeshrink.export import ort_session, run_onnx
from edgeshrink.quant import DynamicInt8Config, Fp16Config, StaticInt8Config, quantize
from edgeshrink.quant.simulate import QdqSimulator, simulate_outputs

CONFIGS = [
    *(StaticInt8Config(calibrator=c, calibration_samples=128)
      for c in ("minmax", "percentile", "entropy", "mse")),
    StaticInt8Config(calibrator="minmax", per_channel=False, calibration_samples=128),
    DynamicInt8Config(),
    Fp16Config(),
]


def _ort_outputs(path, data):
    sess = ort_session(path, 1)
    return np.concatenate([run_onnx(sess, b) for b in data.numpy_batches(500)])


@pytest.mark.parametrize("task_name", ["mnist_task", "digits_task"])
def test_ort_and_simulation_agree_within_half_a_point(task_name, request, tmp_path):
    task = request.getfixturevalue(task_name)
    data = task.eval.head(500)  # 500 samples: one sample is 0.2 point (mnist), 0.25 (digits)
    for i, cfg in enumerate(CONFIGS):
        art = quantize(task.model, cfg, task.calibration, workdir=tmp_path, name=f"c{i}")
        ort_acc = task.metric(_ort_outputs(art.path, data), data.targets)
        sim_acc = task.metric(simulate_outputs(art.path, data.numpy_batches(500)), data.targets)
        assert abs(ort_acc - sim_acc) <= 0.5, (cfg, ort_acc, sim_acc)


def test_simulation_tracks_the_int8_grid_not_fp32(mnist_task, tmp_path):
    # The simulation must reproduce INT8 rounding: closer to ORT's INT8 output than FP32 is.
    art = quantize(mnist_task.model, StaticInt8Config(), mnist_task.calibration, workdir=tmp_path)
    x = mnist_task.eval.head(200)
    ort = _ort_outputs(art.path, x)
    sim = QdqSimulator(art.path)(*x.inputs)
    with torch.no_grad():
        fp32 = mnist_task.model(torch.from_numpy(x.inputs[0])).numpy()
    err_sim = np.abs(sim - ort).mean()
    err_fp32 = np.abs(fp32 - ort).mean()
    assert err_sim < 0.5 * err_fp32
