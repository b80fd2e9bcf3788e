"""Excluding named layers from INT8: the node stays FP32, patterns are checked."""

from __future__ import annotations

import onnx
import pytest

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.errors import UserError
from edgeshrink.quant import DynamicInt8Config, StaticInt8Config, quantize
from edgeshrink.quant.ort import module_name


def _float_weight_gemms(path) -> int:
    """Gemm/MatMul nodes whose weight is a plain FP32 initializer (not dequantized)."""
    g = onnx.load(str(path)).graph
    inits = {t.name for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return sum(n.op_type in ("Gemm", "MatMul") and n.input[1] in inits for n in g.node)


@pytest.mark.parametrize("name,expected", [
    ("/features/features.1/conv/conv.0/conv.0.0/Conv", "features.1.conv.0.0"),
    ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
    ("/bert/encoder/layer.0/attention/self/query/MatMul", "bert.encoder.layer.0.attention.self.query"),
])  # fmt: skip
def test_module_name_from_scoped_node_name(name, expected):
    assert module_name(name) == expected


@pytest.mark.parametrize("make", [
    lambda ex: StaticInt8Config(calibration_samples=32, exclude=ex),
    lambda ex: DynamicInt8Config(exclude=ex),
])  # fmt: skip
def test_excluded_layer_stays_fp32(tiny, tmp_path, make):
    full = quantize(tiny.model, make(()), tiny.calibration, workdir=tmp_path, name="a")
    part = quantize(tiny.model, make((r"^classifier\.3$",)), tiny.calibration,
                    workdir=tmp_path, name="b")  # fmt: skip
    assert _float_weight_gemms(full.path) == 0
    assert _float_weight_gemms(part.path) == 1
    assert part.path.stat().st_size > full.path.stat().st_size  # 4-byte weights back
    assert part.notes["excluded"] == [r"^classifier\.3$"]


def test_exclude_round_trips_and_is_checked(tiny, tmp_path):
    cfg = StaticInt8Config(exclude=("classifier",))
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(UserError, match="regex"):
        StaticInt8Config(exclude=("(",))
    with pytest.raises(UserError, match="matches no layer"):
        quantize(tiny.model, DynamicInt8Config(exclude=("nonexistent",)), tiny.calibration,
                 workdir=tmp_path)  # fmt: skip
