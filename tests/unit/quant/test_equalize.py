"""Cross-layer equalization: the FP32 function is unchanged, the ranges are equal."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.errors import UserError
from edgeshrink.export import export_onnx, ort_session, run_onnx
from edgeshrink.quant.equalize import (
    ChannelClip,
    CrossLayerEqualizationConfig,
    equalization_pairs,
    equalize,
)


def _cbr(cin, cout, groups=1, act=nn.ReLU6):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())  # fmt: skip


class Block(nn.Module):
    """MobileNetV2-like: expand -> depthwise -> project (+ residual), then a ReLU head."""

    def __init__(self):
        super().__init__()
        self.stem = _cbr(3, 8, act=nn.ReLU)
        self.expand, self.dw = _cbr(8, 24), _cbr(24, 24, groups=24)
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 16, 32), nn.ReLU(), nn.Linear(32, 5))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        return self.head(nn.functional.adaptive_avg_pool2d(x, 4))


def _model():
    torch.manual_seed(0)
    model = Block()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # channel ranges far apart, as after real training
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen) * 3 + 0.05
            m.running_mean = torch.randn(m.num_features, generator=gen) * 0.3
            m.running_var = torch.rand(m.num_features, generator=gen) + 0.2
    return model.eval()


X = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2


def test_equalization_keeps_fp32_outputs_and_equalizes_ranges(tmp_path):
    model = _model()
    with torch.no_grad():
        before = model(X)
    eq = copy.deepcopy(model)
    assert equalize(eq, iterations=6) == 3  # expand-dw, dw-project, fc1-fc2
    with torch.no_grad():
        after = eq(X)
    assert float((after - before).abs().max()) <= 1e-5 * max(1.0, float(before.abs().max()))
    assert isinstance(eq.expand[2], ChannelClip) and isinstance(eq.dw[2], ChannelClip)
    # after equalization the two sides of the dw -> project pair have equal ranges
    r1 = eq.dw[0].weight.abs().flatten(1).amax(1)
    r2 = eq.project[0].weight.abs().transpose(0, 1).flatten(1).amax(1)
    torch.testing.assert_close(r1, r2, rtol=1e-4, atol=1e-6)
    spread = lambda w: float(w.abs().flatten(1).amax(1).max() / w.abs().flatten(1).amax(1).min())  # noqa: E731
    from edgeshrink.quant.equalize import fold_batchnorm

    folded = copy.deepcopy(model)
    fold_batchnorm(folded)
    assert spread(eq.dw[0].weight) < spread(folded.dw[0].weight) / 2
    path = export_onnx(eq, (X[:1],), tmp_path / "eq.onnx")  # Relu + Min export, checked
    got = run_onnx(ort_session(path, 1), (X.numpy(),))
    assert np.abs(got - before.numpy()).max() <= 1e-4


def test_pairs_stop_at_residual_adds_and_a_model_without_pairs_is_refused():
    from edgeshrink.quant.equalize import fold_batchnorm

    model = _model()
    assert fold_batchnorm(model) == 4
    pairs = equalization_pairs(model)
    # the stem's output also feeds the residual add, the project's ends in it: not scaled
    assert [p[0] for p in pairs] == ["expand.0", "dw.0", "head.1"]
    assert pairs[0] == ("expand.0", ["expand.1", "expand.2"], "dw.0")
    with pytest.raises(UserError, match="no Conv/Linear pair"):
        equalize(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)))


def test_config_round_trips_and_validates():
    cfg = CrossLayerEqualizationConfig(iterations=3)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(UserError, match="iterations"):
        CrossLayerEqualizationConfig(iterations=0)
