"""Weight-only INT4 (MatMulNBits): smaller, close to FP32, simulated exactly enough."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import ort_session, run_onnx
from edgeshrink.quant import Int4WeightOnlyConfig, quantize
from edgeshrink.quant.simulate import QdqSimulator


def _mlp(k: int = 256) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(k, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10)).eval()  # fmt: skip


def _data(k: int = 256) -> Dataset:
    return Dataset((np.random.default_rng(0).standard_normal((64, k)).astype(np.float32),),
                   np.zeros(64))  # fmt: skip


@pytest.mark.parametrize("group,symmetric", [(32, True), (128, False)])
def test_int4_smaller_and_close(group, symmetric, tmp_path):
    model, data = _mlp(), _data()
    art = quantize(model, Int4WeightOnlyConfig(group_size=group, symmetric=symmetric), data,
                   workdir=tmp_path)  # fmt: skip
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert art.path.stat().st_size < fp32_bytes / 5
    got = run_onnx(ort_session(art.path, 1), data.inputs)
    with torch.no_grad():
        ref = model(torch.from_numpy(data.inputs[0])).numpy()
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel < 0.15
    assert art.precision == "int4" and art.notes["layers"] == 3
    # the PyTorch simulation dequantizes the packed nibbles: it matches ORT closely
    sim = QdqSimulator(art.path)(*data.inputs)
    assert np.abs(sim - got).max() / np.abs(ref).max() < 0.05


def test_layers_the_group_does_not_divide_stay_float_and_are_named(tmp_path):
    import onnx

    from edgeshrink.errors import CompressionWarning

    model, data = _mlp(200), _data(200)  # first layer: 200 inputs, 64 does not divide them
    with pytest.warns(CompressionWarning, match=r"does not divide the input size of \S*0\S*: kept"):
        art = quantize(model, Int4WeightOnlyConfig(group_size=64), data, workdir=tmp_path)
    ops = [n.op_type for n in onnx.load(str(art.path)).graph.node]
    assert ops.count("MatMulNBits") == 2 and ops.count("MatMul") == 1
    assert art.notes["layers"] == 2 and len(art.notes["kept_float"]) == 1
    got = run_onnx(ort_session(art.path, 1), data.inputs)
    with torch.no_grad():
        ref = model(torch.from_numpy(data.inputs[0])).numpy()
    assert np.abs(got - ref).max() / np.abs(ref).max() < 0.15
    with pytest.raises(UserError, match="divides the input size of no"):
        quantize(nn.Linear(200, 8), Int4WeightOnlyConfig(group_size=64), data, workdir=tmp_path)


@pytest.mark.parametrize("field,value", [("bits", 0), ("bits", 17), ("bits", 3),
                                         ("group_size", 48), ("accuracy_level", 5)])  # fmt: skip
def test_bad_int4_config_is_a_user_error(field, value):
    with pytest.raises(UserError, match=field):
        Int4WeightOnlyConfig(**{field: value})
