"""Sensitivity scan schema and the per-layer allocation for a global target."""

import copy

import pytest
from prune_helpers import mlp, task

from edgeshrink.errors import UserError
from edgeshrink.measure.model_stats import weight_sparsity
from edgeshrink.prune import SensitivityConfig, prune
from edgeshrink.prune.sensitivity import allocate, layer_sizes, scan
from edgeshrink.prune.unstructured import select_weights
from edgeshrink.train import FinetuneConfig, fit
from edgeshrink.transforms import TransformContext


def _table(layers: dict, levels=(0.0, 0.5, 0.9)):
    return {"sparsity": {"levels": list(levels), "layers": layers}}


def test_allocation_hits_the_target_exactly_and_spares_the_sensitive_layer():
    table = _table({"a": [90.0, 89.9, 89.5], "b": [90.0, 60.0, 20.0]})
    sizes = {"a": 1000, "b": 1000}
    alloc = allocate(table, sizes, 0.6)
    assert sum(alloc[n] * sizes[n] for n in sizes) == pytest.approx(0.6 * 2000)
    assert alloc == pytest.approx({"a": 0.9, "b": 0.3})


def test_allocation_weighs_layer_sizes():
    table = _table({"big": [90, 85, 80], "small": [90, 85, 80]})
    alloc = allocate(table, {"big": 9000, "small": 1000}, 0.45)
    # same drop curves: pruning the big layer removes more weights per point lost
    assert alloc["big"] == pytest.approx(0.5) and alloc["small"] == pytest.approx(0.0)


def test_allocation_refuses_a_target_above_the_scanned_levels():
    with pytest.raises(UserError, match="largest scanned level"):
        allocate(_table({"a": [1, 1, 1]}), {"a": 10}, 0.95)


def _trained():
    t = task(mlp())
    fit(t.model, FinetuneConfig(epochs=20, lr=3e-3, keep_zeros=False), t.train)
    return t


def test_scan_schema_and_values():
    t = _trained()
    table = scan(t.model, t, levels=(0.0, 0.5, 0.95))
    s = table["sparsity"]
    assert s["levels"] == [0.0, 0.5, 0.95] and s["split"] == "calibration"
    assert list(s["layers"]) == list(select_weights(t.model))
    base = s["layers"]["1.weight"][0]
    assert all(row[0] == base for row in s["layers"].values())
    assert all(len(row) == 3 for row in s["layers"].values())
    assert min(row[2] for row in s["layers"].values()) < base  # pruning 95 % of a layer hurts
    div = s["divergence"]
    assert all(row[0] == 0.0 for row in div.values())
    assert all(row[2] > row[1] > 0 for row in div.values())  # more pruning, further from dense
    assert weight_sparsity(t.model) == 0.0  # the scan leaves the model untouched


def test_allocation_prefers_the_divergence_when_the_scan_has_it():
    table = _table({"a": [90.0, 90.0, 90.0], "b": [90.0, 90.0, 90.0]})
    table["sparsity"]["divergence"] = {"a": [0.0, 0.5, 2.0], "b": [0.0, 0.01, 0.02]}
    sizes = {"a": 100, "b": 100}
    assert allocate(table, sizes, 0.45) == pytest.approx({"a": 0.0, "b": 0.9})
    assert allocate(table, sizes, 0.45, by="metric")["a"] == pytest.approx(0.9)  # ties: first


def test_sensitivity_transform_reaches_the_global_target():
    t = _trained()
    cfg = SensitivityConfig(0.7, levels=(0.0, 0.5, 0.8, 0.95))
    model = prune(copy.deepcopy(t.model), cfg, TransformContext(t, None))
    assert weight_sparsity(model) == pytest.approx(0.7, abs=2e-3)
    per_layer = {n: float((w == 0).float().mean()) for n, w in select_weights(model).items()}
    assert len(set(round(v, 2) for v in per_layer.values())) > 1  # not uniform
    assert sum(per_layer[n] * k for n, k in layer_sizes(model).items()) == pytest.approx(
        0.7 * sum(layer_sizes(model).values()), rel=1e-3)
