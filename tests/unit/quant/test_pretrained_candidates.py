"""pretrained_candidates: the issue-5 recipe list per model kind; the OpenVINO target runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.data import Dataset
from edgeshrink.quant.pretrained import edge_layers
from edgeshrink.study.plans.pretrained import pretrained_candidates
from edgeshrink.task import Task


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.ffn = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))

    def forward(self, x):
        return self.ffn(self.norm(x))


class TinyEmbeddedEncoder(TinyEncoder):
    """A transformer whose embedding table outweighs its Linear layers (MiniLM's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 64)

    def forward(self, ids):
        return super().forward(self.embed(ids))


def test_a_big_embedding_table_does_not_make_a_transformer_a_cnn():
    ids = np.random.default_rng(0).integers(0, 1000, (16, 8))
    task = Task("emb", TinyEmbeddedEncoder().eval(), None, Dataset((ids,), ids),
                Dataset((ids,), ids))  # fmt: skip
    names = {s.name for s in pretrained_candidates(task)}
    assert "outlier-split-ffn-down+int8-dynamic" in names and "int8-per-token-all" in names
    assert "int8-static-percentile" not in names  # static QDQ needs an outlier answer first


def _encoder_task() -> Task:
    x = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    return Task("enc", TinyEncoder().eval(), None, Dataset((x,), x), Dataset((x,), x))


def test_edge_layers_name_first_and_last(tiny):
    assert edge_layers(tiny.model) == (r"^features\.0$", r"^classifier\.3$")


def test_cnn_candidates(tiny):
    specs = {s.name: s for s in pretrained_candidates(tiny)}
    for name in ("int8-static-percentile", "int8-static-percentile-keep-ends", "int8-dynamic",
                 "fp16", "wanda-50", "wanda-2:4", "structured-25", "structured-25+int8_static"):
        assert name in specs, name
    assert "int4-weight-only-g32" not in specs  # convs dominate
    for spec in specs.values():  # every recipe survives the results.json round trip
        assert tuple(config_from_dict(config_to_dict(c)) for c in spec.recipe) == spec.recipe


class TinyDepthwise(nn.Module):
    """MobileNet's shape: a depthwise conv between two pointwise ones."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(8, 4)

    def forward(self, x):
        return self.classifier(self.features(x))


def test_wanda_candidates_leave_depthwise_convs_dense(tmp_path):
    """One-shot pruning refuses grouped convs; MobileNetV2's Wanda candidates failed on its
    first depthwise conv until the candidate list excluded them."""
    from _tiny import ctx_for

    from edgeshrink.transforms import apply_recipe

    x = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
    y = np.zeros(32, dtype=np.int64)
    torch.manual_seed(0)
    task = Task("dw", TinyDepthwise().eval(), None, Dataset((x,), y), Dataset((x,), y))
    specs = {s.name: s for s in pretrained_candidates(task)}
    for name in ("wanda-50", "wanda-2:4"):
        art = apply_recipe(list(specs[name].recipe), ctx_for(task, tmp_path))
        weights = dict(art.model.named_parameters())
        assert (weights["features.2.weight"] != 0).all()  # depthwise: dense
        assert (weights["features.4.weight"] == 0).float().mean() >= 0.5  # pointwise: pruned


def test_transformer_candidates_add_int4_and_smoothquant():
    names = [s.name for s in pretrained_candidates(_encoder_task())]
    assert "int4-weight-only-g32" in names and "smoothquant-0.5+int8-static" in names
    assert "int8-static-percentile" not in names  # plain static QDQ: outliers (FIELD-NOTES)


@pytest.mark.skipif(not importlib.util.find_spec("openvino") or not importlib.util.find_spec("nncf"),
                    reason="openvino/nncf not installed")  # fmt: skip
@pytest.mark.parametrize(("quantizer", "activations"),
                         [("edgeshrink", "uint8"), ("edgeshrink", "mixed"), ("nncf", "uint8")])
def test_openvino_target_matches_fp32(tiny, tmp_path, quantizer, activations):
    import openvino as ov
    from _tiny import ctx_for

    from edgeshrink.quant import OpenVinoInt8Config
    from edgeshrink.quant.openvino import compiled_graph
    from edgeshrink.transforms import apply_recipe

    cfg = OpenVinoInt8Config(quantizer=quantizer, activations=activations, calibration_samples=64)
    art = apply_recipe([cfg], ctx_for(tiny, tmp_path))
    x = tiny.eval.inputs[0][:64]
    got = np.concatenate([art.simulate(x[i : i + 1]) for i in range(len(x))])
    with torch.no_grad():
        ref = tiny.model(torch.from_numpy(x)).numpy()
    assert art.notes["runtime"] == "openvino" and art.notes["ir_bytes"] > 0
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95
    # What ships is INT8: the IR holds FakeQuantize (activations) and int8 weights.
    ops = ov.Core().read_model(art.notes["ir"]).get_ordered_ops()
    assert any(op.get_type_name() == "FakeQuantize" for op in ops)
    assert any(op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8
               for op in ops)  # fmt: skip
    fp32_bytes = 4 * sum(p.numel() for p in tiny.model.parameters())
    assert Path(art.notes["ir"]).with_suffix(".bin").stat().st_size < 0.6 * fp32_bytes
    if activations == "mixed":  # the quantizer moved above Flatten/MaxPool fuses into the conv
        kernels = compiled_graph(art.simulate)
        assert kernels[("Pooling", "u8")] == 1 and kernels[("FakeQuantize", "u8")] == 1, kernels
