"""Outlier-channel split (LLM.int8()-style): exact in FP32, and what INT8 sees is tamer."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.quant.outliers import (
    OUTLIER_PATTERN,
    OutlierSplitConfig,
    SplitLinear,
    outlier_channels,
    split_outliers,
)


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 64)
        self.down = nn.Linear(64, 8)

    def forward(self, x):
        h = torch.relu(self.up(x))
        h = h * self.gain  # two channels 40x the rest: the transformer-outlier shape
        return self.down(h)


def _model_and_data():
    torch.manual_seed(0)
    m = _Mlp().eval()
    gain = torch.ones(64)
    gain[[5, 40]] = 40.0
    m.register_buffer("gain", gain)
    x = np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)
    return m, Dataset((x,), np.zeros(256, np.int64))


def test_channels_are_the_outliers():
    maxima = torch.tensor([1.0, 1.2, 30.0, 0.9, 8.0, 1.1])
    assert outlier_channels(maxima, 6.0, 4).tolist() == [2, 4]
    assert outlier_channels(maxima, 6.0, 1).tolist() == [2]
    assert outlier_channels(maxima, 100.0, 4).tolist() == []


def test_split_is_exact_and_finds_the_planted_channels():
    m, data = _model_and_data()
    ref = copy.deepcopy(m)
    split, chosen = split_outliers(m, OutlierSplitConfig(layers="down"), data)
    assert chosen == {"down": [5, 40]}
    assert isinstance(split.down, SplitLinear) and not isinstance(split.up, SplitLinear)
    x = torch.from_numpy(data.inputs[0])
    with torch.no_grad():
        torch.testing.assert_close(split(x), ref(x), atol=1e-5, rtol=1e-5)


def test_int8_dynamic_after_the_split_is_closer_to_fp32(tmp_path):
    from edgeshrink.export import ort_session, run_onnx
    from edgeshrink.quant import DynamicInt8Config, quantize

    m, data = _model_and_data()
    x = data.inputs[0]
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    plain = quantize(m, DynamicInt8Config(), data, workdir=tmp_path, name="plain").path
    split, _ = split_outliers(copy.deepcopy(m), OutlierSplitConfig(layers="down"), data)
    cfg = DynamicInt8Config(exclude=(OUTLIER_PATTERN,))
    path = quantize(split, cfg, data, workdir=tmp_path, name="split").path
    err = {n: float(np.abs(run_onnx(ort_session(p, 1), (x,)) - ref).mean())
           for n, p in (("plain", plain), ("split", path))}  # fmt: skip
    assert err["split"] < 0.5 * err["plain"], err
    # the side MatMul stayed FP32: one float MatMul whose weight has 2 input rows
    g = onnx.load(str(path)).graph
    shapes = {t.name: tuple(t.dims) for t in g.initializer}
    float_mm = [n for n in g.node if n.op_type == "MatMul"
                and any(shapes.get(i, ())[:1] == (2,) for i in n.input)]  # fmt: skip
    assert len(float_mm) == 1
    assert any(n.op_type == "MatMulInteger" for n in g.node)


@pytest.mark.parametrize("kwargs,match", [({"ratio": 0.5}, "ratio"),
                                          ({"max_channels": 0}, "max_channels"),
                                          ({"layers": "("}, "layers")])  # fmt: skip
def test_bad_config_is_a_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        OutlierSplitConfig(**kwargs)


def test_no_matching_layer_is_a_user_error():
    m, data = _model_and_data()
    with pytest.raises(UserError, match="no Linear layer"):
        split_outliers(m, OutlierSplitConfig(layers="nothing"), data)
