"""k-means weight sharing and power-of-two levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import accuracy, ctx_for

from edgeshrink.data import Dataset
from edgeshrink.encode import decode
from edgeshrink.quant.nonuniform import (
    Codebook,
    KMeansConfig,
    Po2Config,
    deep_compression_recipe,
    kmeans_1d,
    po2_quantize,
)
from edgeshrink.task import Task
from edgeshrink.transforms import TransformContext, apply_recipe


def test_kmeans_1d_finds_clusters():
    v = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.5), torch.full((20,), 2.0)])
    v = v + 0.01 * torch.randn(100, generator=torch.Generator().manual_seed(0))
    c, a = kmeans_1d(v, 3)
    assert torch.allclose(c, torch.tensor([-1.0, 0.5, 2.0]), atol=0.01)
    assert torch.equal(torch.bincount(a), torch.tensor([50, 30, 20]))


def test_codebook_keeps_zeros_and_centroid_grad_is_sum():
    w = torch.tensor([[0.0, 1.0, 1.1], [3.0, 0.0, 2.9]])
    cb = Codebook(w, bits=1)
    out = cb()
    assert torch.equal(out == 0, w == 0)
    assert len(torch.unique(out[out != 0])) == 2
    (out * torch.tensor([[5.0, 1.0, 2.0], [3.0, 7.0, 4.0]])).sum().backward()
    assert torch.allclose(cb.centroids.grad, torch.tensor([3.0, 7.0]))


def test_po2_levels():
    w = torch.tensor([[1.0, 0.52, -0.3, 0.01, 0.12]])
    q = po2_quantize(w, 3)  # levels {0, 1, 1/2, 1/4} * max|w|
    assert torch.allclose(q, torch.tensor([[1.0, 0.5, -0.25, 0.0, 0.0]]))
    assert set((q.abs() / 1.0).flatten().tolist()) <= {0.0, 1.0, 0.5, 0.25}


def test_kmeans_artifact_decodes_to_its_weights(tiny, tmp_path):
    art = apply_recipe([KMeansConfig(bits=3, epochs=1)], ctx_for(tiny, tmp_path))
    assert art.notes["runs_as"] == "decoded to dense FP32 ONNX at load"
    for layer in (art.model.features[0], art.model.classifier[1]):
        assert len(torch.unique(layer.weight)) <= 8
    from edgeshrink.encode import encode_model_weights

    blob = encode_model_weights(art.model)
    assert len(blob) == art.size_encoded_bytes
    for k, v in decode(blob).items():
        assert np.array_equal(v, art.model.state_dict()[k].numpy())
    assert accuracy(tiny, art) >= accuracy(tiny, apply_recipe([], ctx_for(tiny, tmp_path, "b"))) - 3


def test_deep_compression_recipe_is_small(tiny, tmp_path):
    recipe = deep_compression_recipe(0.9, schedule=(), prune_epochs=1, kmeans_epochs=1)
    art = apply_recipe(list(recipe), ctx_for(tiny, tmp_path))
    dense = sum(p.numel() for p in tiny.model.state_dict().values()) * 4
    assert art.size_encoded_bytes * 6 < dense
    assert accuracy(tiny, art) > 70


def test_po2_artifact(tiny, tmp_path):
    art = apply_recipe([Po2Config(bits=4)], ctx_for(tiny, tmp_path))
    assert art.runtime == "simulated"
    w = art.model.get_submodule("classifier.1").weight
    ratio = w.abs() / w.abs().amax(1, keepdim=True)
    nz = ratio[ratio > 0]
    assert torch.allclose(torch.log2(nz), torch.round(torch.log2(nz)))


def test_deep_compression_prunes_by_one_global_cut_not_uniformly(tmp_path):
    """At 95 % the default 5 % floor per layer would pin every layer at exactly 5 % kept (a
    uniform cut); the recipe's floor leaves the global cut's rates: the big first layer of a
    784-300-100-10 MLP loses more than 95 %, the small last one far less."""
    from edgeshrink.prune import UnstructuredConfig

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 300), torch.nn.ReLU(),
                              torch.nn.Linear(300, 100), torch.nn.ReLU(),
                              torch.nn.Linear(100, 10))
    step = deep_compression_recipe(0.95, schedule=())[0]
    assert isinstance(step, UnstructuredConfig) and step.min_keep == pytest.approx(0.0125)
    x = np.random.default_rng(0).normal(size=(8, 1, 28, 28)).astype(np.float32)
    task = Task("mlp", mlp, *(Dataset((x,), np.zeros(8, np.int64)),) * 3)
    art = apply_recipe([step], TransformContext(task=task, workdir=tmp_path, name="p"))
    zero = {n: float((m.weight == 0).float().mean()) for n, m in art.model.named_modules()
            if isinstance(m, torch.nn.Linear)}
    total = sum(float((m.weight == 0).sum()) for m in art.model.modules()
                if isinstance(m, torch.nn.Linear)) / sum(
        m.weight.numel() for m in art.model.modules() if isinstance(m, torch.nn.Linear))
    assert total == pytest.approx(0.95, abs=1e-3)
    assert zero["1"] > 0.955 and zero["5"] < 0.8, zero
