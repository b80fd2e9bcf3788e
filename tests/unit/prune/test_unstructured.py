"""Unstructured magnitude/random pruning, global vs layer-wise thresholds, distillation."""

import copy

import pytest
import torch
import torch.nn.functional as F
from prune_helpers import data, mlp, task
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.errors import UserError
from edgeshrink.measure.model_stats import weight_sparsity
from edgeshrink.prune import (
    GradualConfig,
    IterativeConfig,
    NMConfig,
    SensitivityConfig,
    SparseGPTConfig,
    UnstructuredConfig,
    WandaConfig,
    prune,
)
from edgeshrink.prune.unstructured import prune_unstructured, select_weights
from edgeshrink.train import FinetuneConfig, _loss, fit


def test_global_threshold_is_one_cut_over_all_layers():
    model = mlp()
    with torch.no_grad():
        model[3].weight.mul_(10.0)  # layer 2 much larger: a global cut spares it
    model = prune(model, UnstructuredConfig(0.5, scope="global"))
    w = {n: v.detach() for n, v in select_weights(model).items()}
    kept = torch.cat([v[v != 0].abs() for v in w.values()])
    assert weight_sparsity(model) == pytest.approx(0.5, abs=1e-3)
    assert float((w["3.weight"] == 0).float().mean()) < 0.05  # the large layer barely pruned
    assert float((w["1.weight"] == 0).float().mean()) > 0.6
    # every kept weight is at least as large as every pruned one (of the original weights)
    orig = {n: v.detach().clone() for n, v in select_weights(mlp()).items()}
    orig["3.weight"].mul_(10.0)
    pruned = torch.cat([orig[n][w[n] == 0].abs() for n in w])
    assert float(pruned.max()) <= float(kept.min())


def test_layer_scope_prunes_each_layer_to_the_fraction():
    model = prune(mlp(), UnstructuredConfig(0.75, scope="layer"))
    for name, w in select_weights(model).items():
        assert float((w == 0).float().mean()) == pytest.approx(0.75, abs=1 / w.numel()), name


def test_random_criterion_hits_the_fraction_but_not_the_smallest():
    mag = prune(mlp(), UnstructuredConfig(0.6, scope="layer"))
    rnd = prune(mlp(), UnstructuredConfig(0.6, scope="layer", criterion="random", seed=3))
    assert weight_sparsity(rnd) == pytest.approx(0.6, abs=2e-3)
    assert not torch.equal(mag[1].weight == 0, rnd[1].weight == 0)


def test_per_layer_allocation_and_exclude():
    model = prune_unstructured(mlp(), UnstructuredConfig(0.5, exclude=(r"5\.weight",)),
                               per_layer={"1.weight": 0.9, "3.weight": 0.25})
    w = select_weights(model)
    assert float((w["1.weight"] == 0).float().mean()) == pytest.approx(0.9, abs=1e-3)
    assert float((w["3.weight"] == 0).float().mean()) == pytest.approx(0.25, abs=1e-3)
    assert int((w["5.weight"] == 0).sum()) == 0


@pytest.mark.parametrize("cfg", [
    UnstructuredConfig(0.8, scope="layer", exclude=("a",)), NMConfig(n=1, m=8),
    SparseGPTConfig(0.6, pattern="2:4", blocksize=64), WandaConfig(0.3, group="layer"),
    IterativeConfig(0.7, steps=2, distill=0.5), GradualConfig(0.1, 0.8, frequency=3),
    SensitivityConfig(0.7, levels=(0.0, 0.5, 0.9)),
])
def test_configs_round_trip_and_are_pruning(cfg):
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert cfg.family == "pruning" and cfg.sparsity_kind in ("unstructured", "n:m")


def test_distillation_loss_is_t2_scaled_kl_plus_hard_labels():
    torch.manual_seed(0)
    s, t, y = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    cfg = FinetuneConfig(distill=0.3, temperature=2.0)
    p_t = F.softmax(t / 2, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / 2, 1))).sum(1).mean() * 4
    expected = 0.3 * kl + 0.7 * F.cross_entropy(s, y)
    assert float(_loss(s, y, t, cfg)) == pytest.approx(float(expected), rel=1e-5)


def test_distilled_finetune_keeps_zeros_and_moves_toward_the_teacher():
    teacher = mlp(seed=1)
    student = prune(mlp(seed=2), UnstructuredConfig(0.5))
    zeros = [w == 0 for w in select_weights(student).values()]
    ds = data(128)
    x = torch.from_numpy(ds.inputs[0])

    def kl():
        with torch.no_grad():
            return float(F.kl_div(F.log_softmax(student(x), 1), F.log_softmax(teacher(x), 1),
                                  log_target=True, reduction="batchmean"))

    before = kl()
    fit(student, FinetuneConfig(epochs=15, lr=5e-3, distill=1.0, temperature=1.0), ds,
        teacher=teacher)
    assert kl() < 0.5 * before
    for z, w in zip(zeros, select_weights(student).values(), strict=True):
        assert bool((w[z] == 0).all())


def test_prune_verb_through_a_context():
    from edgeshrink.transforms import TransformContext

    t = task(mlp())
    model = prune(copy.deepcopy(t.model), UnstructuredConfig(0.9), TransformContext(t, None))
    assert weight_sparsity(model) == pytest.approx(0.9, abs=1e-3)


def _bn_like(seed: int = 0) -> nn.Module:
    # Behind BatchNorm a conv's weight scale is arbitrary: layer 2 is 100x smaller here.
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    with torch.no_grad():
        model[2].weight.mul_(0.01)
    return model


def test_global_pruning_never_takes_a_layer_below_its_floor():
    import warnings

    from edgeshrink.errors import CompressionWarning

    with pytest.warns(CompressionWarning, match=r"2\.weight keeps 0\.0 %"):
        bare = prune(_bn_like(), UnstructuredConfig(0.6, min_keep=0.0))
    assert float((bare[2].weight == 0).float().mean()) == 1.0  # emptied without a floor
    with pytest.warns(CompressionWarning, match=r"nearly empties 1 layer\(s\): 2\.weight keeps 5\.0 %"):
        model = prune(_bn_like(), UnstructuredConfig(0.6))  # default floor: 5 %
    kept = {n: float((w != 0).float().mean()) for n, w in select_weights(model).items()}
    assert kept["2.weight"] == pytest.approx(0.05, abs=1 / 4096)
    assert weight_sparsity(model) == pytest.approx(0.6, abs=1e-3)  # the target still holds
    # the weights kept in the floored layer are its largest ones
    w, orig = model[2].weight.abs(), _bn_like()[2].weight.abs()
    assert float(orig[w == 0].max()) <= float(orig[w != 0].min())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing near empty: no warning
        prune(_bn_like(), UnstructuredConfig(0.3, scope="layer"))
    with pytest.raises(UserError, match="min_keep"):
        UnstructuredConfig(0.97)
