"""SmoothQuant: exact in FP32, fewer INT8 errors when activations have outlier channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import ort_session, run_onnx
from edgeshrink.quant import SmoothQuantConfig, StaticInt8Config
from edgeshrink.quant.smooth import SmoothedLinear, smooth_model, smooth_scales
from edgeshrink.task import Task
from edgeshrink.transforms import TransformContext, apply_recipe


class OutlierMlp(nn.Module):
    """LayerNorm whose gain puts two channels 60x above the rest (as in BERT), then Linears."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.LayerNorm(32)
        with torch.no_grad():
            self.norm.weight[[3, 17]] = 60.0
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 8)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.norm(x))))


def _task() -> Task:
    rng = np.random.default_rng(0)
    data = Dataset((rng.standard_normal((256, 32)).astype(np.float32),), np.zeros(256))
    return Task("outlier", OutlierMlp().eval(), None, data.head(128), data.subset(slice(128, 256)))


def test_scales_follow_the_formula():
    act, w = torch.tensor([4.0, 1.0]), torch.tensor([[1.0, 2.0], [0.5, 8.0]])
    s = smooth_scales(act, w, 0.5)
    assert torch.allclose(s, torch.tensor([4.0**0.5 / 1.0**0.5, 1.0 / 8.0**0.5]))


def test_smoothing_is_exact_in_fp32():
    task = _task()
    x = torch.from_numpy(task.eval.inputs[0])
    ref = task.model(x)
    smoothed = smooth_model(OutlierMlp().eval(), SmoothQuantConfig(alpha=0.5), task.calibration)
    assert isinstance(smoothed.fc1, SmoothedLinear)
    assert torch.allclose(smoothed(x), ref, atol=1e-4)


def test_smoothquant_then_static_int8_is_closer_to_fp32(tmp_path):
    task = _task()
    ref = task.model(torch.from_numpy(task.eval.inputs[0])).detach().numpy()
    errs = {}
    for alpha in (None, 0.5):
        recipe = [StaticInt8Config(calibrator="minmax", ops=("MatMul", "Gemm"))]
        if alpha is not None:
            recipe.insert(0, SmoothQuantConfig(alpha=alpha))
        ctx = TransformContext(task=task, workdir=tmp_path, name=f"a{alpha}")
        out = run_onnx(ort_session(apply_recipe(recipe, ctx).path, 1), task.eval.inputs)
        errs[alpha] = float(np.mean((out - ref) ** 2))
    assert errs[0.5] < 0.8 * errs[None], errs  # measured: 0.0149 vs 0.0210


def test_config_round_trips_and_checks():
    cfg = SmoothQuantConfig(alpha=0.8, layers="fc")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(UserError, match="alpha"):
        SmoothQuantConfig(alpha=1.5)
    with pytest.raises(UserError, match="no Linear"):
        smooth_model(OutlierMlp(), SmoothQuantConfig(layers="attn"), _task().calibration)
