"""Mixed precision: sensitivity schema, plan keeps sensitive and end layers high."""

from __future__ import annotations

import pytest
from _tiny import ctx_for

from edgeshrink.errors import UserError
from edgeshrink.quant.mixed import MixedConfig, layer_sensitivity, plan_bits
from edgeshrink.transforms import apply_recipe


def test_plan_from_synthetic_sensitivity():
    sens = {"levels": [8, 4, 2], "reference": 90.0,
            "layers": {"a": [90, 89, 50], "b": [90, 89.8, 80], "c": [90, 87, 10], "d": [90, 90, 90]}}
    assert plan_bits(sens, low=4, high=8) == {"a": 8, "b": 4, "c": 8, "d": 8}
    assert plan_bits(sens, low=4, high=8, keep_ends=False) == {"a": 8, "b": 4, "c": 8, "d": 4}
    assert plan_bits(sens, low=2, high=8, max_layer_drop=15, keep_ends=False)["b"] == 2


def test_sensitivity_schema_and_monotone(tiny):
    sens = layer_sensitivity(tiny.model, tiny.calibration, tiny.metric, (8, 4, 1))
    assert sens["levels"] == [8, 4, 1]
    assert list(sens["layers"]) == ["features.0", "classifier.1", "classifier.3"]
    for values in sens["layers"].values():
        assert len(values) == 3
        assert abs(values[0] - sens["reference"]) <= 1.0  # 8 bits is harmless
    assert min(v[2] for v in sens["layers"].values()) < sens["reference"] - 5  # 1 bit is not


def test_mixed_artifact(tiny, tmp_path):
    art = apply_recipe([MixedConfig(low=2, high=8)], ctx_for(tiny, tmp_path))
    bits = art.notes["layer_bits"]
    assert bits["features.0"] == 8 and bits["classifier.3"] == 8
    assert art.notes["sensitivity"]["bits"]["levels"][-1] == 2
    assert art.runtime == "simulated"


def test_errors():
    with pytest.raises(UserError, match="low"):
        MixedConfig(low=0)
