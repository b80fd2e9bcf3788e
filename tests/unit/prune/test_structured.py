"""Structured pruning: channels physically gone, graphs kept consistent, ONNX == PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict, recipe_from_yaml, recipe_to_yaml
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import export_onnx, ort_session, run_onnx
from edgeshrink.measure.model_stats import count_macs, count_params
from edgeshrink.prune import StructuredConfig, prune
from edgeshrink.prune.importance import elementwise_saliency, gradient_statistics
from edgeshrink.prune.structured import prune_structured
from edgeshrink.study.plans.structured import structured_candidates
from edgeshrink.zoo.models_vit import TinyViT

X = (torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)),)


def _cbr(cin, cout, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b = _cbr(3, 16), _cbr(16, 16), _cbr(16, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.b(self.a(x))  # residual add: stem and b share channels
        return self.head(x.mean((2, 3)))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right, self.mix = _cbr(3, 8), _cbr(3, 24), _cbr(32, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.mix(torch.cat([self.left(x), self.right(x)], dim=1))
        return self.head(x.mean((2, 3)))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand, self.dw, self.project = _cbr(3, 32), _cbr(32, 32, groups=32), _cbr(32, 16)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.project(self.dw(self.expand(x))).mean((2, 3)))


def _randomize_bn(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _built(cls):
    torch.manual_seed(0)
    return _randomize_bn(cls())


def _onnx_matches(model, tmp_path, example, atol=1e-4):
    path = export_onnx(model, example, tmp_path / "m.onnx", check_atol=None)
    xs = torch.randn(4, *example[0].shape[1:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(xs).numpy()
    got = run_onnx(ort_session(path, 1), (xs.numpy(),))
    assert np.max(np.abs(got - expected)) <= atol
    return path


def _bn_consistent(model):
    mods = list(model.modules())
    for conv, bn in zip(mods, mods[1:], strict=False):
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            assert bn.num_features == conv.out_channels == bn.running_mean.numel()
            assert bn.weight.numel() == bn.running_var.numel() == conv.out_channels


@pytest.mark.parametrize("cls", [Residual, Concat, Depthwise])
def test_channels_gone_and_onnx_equal(cls, tmp_path):
    model = _built(cls)
    ref = _built(cls)
    macs0, params0 = count_macs(ref, X)[0], count_params(ref)
    size0 = export_onnx(ref, X, tmp_path / "ref.onnx").stat().st_size
    prune_structured(model, StructuredConfig(ratio=0.5, round_to=1), X)
    assert model.head.out_features == 5  # the classifier output is never pruned
    assert model.head.in_features == 8
    assert count_params(model) < 0.5 * params0
    assert count_macs(model, X)[0] < 0.4 * macs0
    _bn_consistent(model)
    path = _onnx_matches(model, tmp_path, X)
    assert path.stat().st_size < 0.5 * size0


def test_residual_branches_share_channels():
    model = prune_structured(_built(Residual), StructuredConfig(ratio=0.5, round_to=4), X)
    assert model.stem[0].out_channels == model.b[0].out_channels == model.a[0].in_channels == 8


def test_depthwise_keeps_groups_equal_channels():
    model = prune_structured(_built(Depthwise), StructuredConfig(ratio=0.25), X)
    dw = model.dw[0]
    assert dw.groups == dw.in_channels == dw.out_channels == model.expand[0].out_channels == 24


def test_concat_splits_follow_their_branches():
    model = prune_structured(_built(Concat), StructuredConfig(ratio=0.5, round_to=1), X)
    assert model.mix[0].in_channels == model.left[0].out_channels + model.right[0].out_channels
    assert (model.left[0].out_channels, model.right[0].out_channels) == (4, 12)


def test_l1_removes_the_smallest_filters():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with torch.no_grad():
        norms = torch.tensor([5.0, 0.1, 4.0, 0.2, 3.0, 0.3, 2.0, 0.4])
        model[0].weight.copy_(norms[:, None, None, None].expand(8, 3, 1, 1) / 3)
        model[0].bias.zero_()
        model[2].weight.fill_(0.01)  # the next layer's columns must not decide the ranking
    kept = model[0].weight[:, 0, 0, 0].clone()
    prune_structured(model, StructuredConfig(ratio=0.5, importance="l1", round_to=1),
                     (torch.ones(1, 3, 2, 2),))
    assert torch.equal(model[0].weight[:, 0, 0, 0], kept[[0, 2, 4, 6]])


def test_macs_target_is_reached_within_a_point():
    model = _built(Residual)
    macs0 = count_macs(model, X)[0]
    prune_structured(model, StructuredConfig(macs_reduction=0.5, round_to=1), X)
    reduction = 1 - count_macs(model, X)[0] / macs0
    assert 0.5 <= reduction <= 0.56


def test_global_scope_and_round_to():
    model = prune_structured(
        _built(Depthwise), StructuredConfig(ratio=0.5, scope="global", round_to=8), X
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.in_channels > 3:
            assert m.in_channels % 8 == 0


def test_round_to_keeps_the_nearest_multiple_not_the_one_below():
    """Torch-Pruning rounds the kept count down: a 10 % ratio with round_to=16 halved a
    32-wide layer (MobileNetV2's). Ours keeps the nearest multiple, or the layer as is."""
    from edgeshrink.prune.structured import kept_channels

    def widths(ratio):
        model = prune_structured(_built(Depthwise), StructuredConfig(ratio=ratio, round_to=16), X)
        return model.expand[0].out_channels, model.project[0].out_channels

    with pytest.raises(UserError, match="removed nothing"):  # 28.8 -> 32: nothing goes
        widths(0.1)
    assert widths(0.4) == (16, 16)  # 19.2 -> 16; project (the output layer's input) as is
    assert [kept_channels(24, t, 16) for t in (22, 18)] == [24, 16]


def _digits(n=24, shape=(1, 28, 28)):
    gen = np.random.default_rng(0)
    return Dataset((gen.standard_normal((n, *shape)).astype(np.float32),), gen.integers(0, 10, n))


def test_attention_heads_and_neurons_removed(tmp_path):
    torch.manual_seed(0)
    vit = TinyViT(dim=32, depth=2, num_heads=4, mlp=64).eval()
    x = (torch.randn(1, 1, 28, 28),)
    prune_structured(vit, StructuredConfig(ratio=0.25, head_ratio=0.5, importance="taylor"), x,
                     data=_digits())  # fmt: skip
    for block in vit.blocks:
        assert block.attn.num_heads == 2
        assert block.attn.q.out_features == block.attn.k.out_features == 2 * 8
        assert block.attn.proj.in_features == 16
        assert block.fc1.out_features == 48
    assert vit.head.out_features == 10
    _onnx_matches(vit, tmp_path, x)


def test_saliency_maths_match_a_direct_computation():
    torch.manual_seed(0)
    lin = nn.Linear(3, 10)
    data = _digits(5, shape=(3,))
    abs_wg, grad_sq = gradient_statistics(lin, data, samples=5, batch_size=5)
    g2 = torch.zeros_like(lin.weight)
    for i in range(5):
        x, y = torch.from_numpy(data.inputs[0][i : i + 1]), torch.tensor([data.targets[i]])
        g = torch.autograd.grad(nn.functional.cross_entropy(lin(x), y), lin.weight)[0]
        g2 += g.pow(2) / 5
    torch.testing.assert_close(grad_sq["weight"], g2)
    hess = elementwise_saliency(lin.weight.detach(), "hessian", grad_sq=grad_sq["weight"])
    torch.testing.assert_close(hess, 0.5 * g2 * lin.weight.detach() ** 2)
    xs, ys = torch.from_numpy(data.inputs[0]), torch.from_numpy(data.targets)
    g = torch.autograd.grad(nn.functional.cross_entropy(lin(xs), ys), lin.weight)[0]
    torch.testing.assert_close(abs_wg["weight"], (lin.weight * g).abs().detach())


@pytest.mark.parametrize("importance", ["l2", "taylor", "hessian"])
def test_every_criterion_prunes_consistently(importance, tmp_path):
    model = _built(Residual)
    data = Dataset((np.random.default_rng(0).standard_normal((8, 3, 16, 16), np.float32),),
                   np.arange(8) % 5)  # fmt: skip
    prune_structured(model, StructuredConfig(ratio=0.5, importance=importance), X, data=data)
    assert model.stem[0].out_channels == 8
    _onnx_matches(model, tmp_path, X)


def test_config_round_trip():
    cfg = StructuredConfig(macs_reduction=0.4, scope="global", importance="hessian",
                           exclude=("stem.*",), round_to=8, head_ratio=0.25)  # fmt: skip
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert recipe_from_yaml(recipe_to_yaml([cfg])) == [cfg]
    assert config_to_dict(cfg)["kind"] == "structured"
    assert StructuredConfig().target == ("macs", 0.5)
    assert StructuredConfig(ratio=0.3).target == ("ratio", 0.3)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"ratio": 1.5}, "ratio"),
        ({"macs_reduction": 0.99}, "macs_reduction"),
        ({"ratio": 0.2, "macs_reduction": 0.5}, "not both"),
        ({"importance": "l3"}, "importance"),
        ({"scope": "layer"}, "scope"),
        ({"round_to": 0}, "round_to"),
        ({"head_ratio": 1.0}, "head_ratio"),
        ({"exclude": ("(",)}, "exclude"),
    ],
)
def test_bad_config_names_the_field(kwargs, word):
    with pytest.raises(UserError, match=word):
        StructuredConfig(**kwargs)


def test_unsupported_layer_is_named():
    class WithGru(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 8)
            self.rnn = nn.GRU(8, 8, batch_first=True)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(self.rnn(self.proj(x))[0][:, -1])

    with pytest.raises(UserError, match=r"'rnn' \(GRU\)"):
        prune_structured(WithGru(), StructuredConfig(ratio=0.5), (torch.randn(1, 3, 4),))


def test_bad_exclude_and_unreachable_target_are_named():
    missing = StructuredConfig(ratio=0.5, exclude=("nothing_here",))
    with pytest.raises(UserError, match="nothing_here"):
        prune_structured(_built(Residual), missing, X)
    everything = StructuredConfig(macs_reduction=0.5, exclude=("stem.*", "a.*", "b.*"))
    with pytest.raises(UserError, match="out of reach"):
        prune_structured(_built(Residual), everything, X)


def test_handler_through_prune_verb_needs_a_context():
    with pytest.raises(UserError, match="example inputs"):
        prune(_built(Residual), StructuredConfig(ratio=0.5))


def test_study_candidates_are_recipes():
    specs = structured_candidates(None)
    names = [s.name for s in specs]
    assert names == ["channels-30mac", "channels-50mac", "channels-50mac+int8-static"]
    assert specs[-1].recipe[-1].kind == "int8_static"
    assert all(s.recipe[0].kind == "structured" for s in specs)


def test_study_candidates_fine_tune_with_distillation(digits_task):
    specs = structured_candidates(digits_task)
    assert all(s.recipe[1].kind == "finetune" and s.recipe[1].distill == 0.5 for s in specs)


class Grouped(nn.Module):
    """A grouped (not depthwise) convolution between two plain ones (ResNeXt-style)."""

    def __init__(self, groups: int = 8):
        super().__init__()
        self.stem, self.g, self.out = _cbr(3, 32), _cbr(32, 32, groups=groups), _cbr(32, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        return self.head(self.out(self.g(self.stem(x))).mean((2, 3)))


@pytest.mark.parametrize("groups", [2, 4, 8])
def test_grouped_conv_keeps_groups_divisible_and_widths_rounded(groups, tmp_path):
    model = prune_structured(_built(lambda: Grouped(groups)), StructuredConfig(ratio=0.3), X)
    g = model.g[0]
    assert g.groups == groups and g.in_channels % groups == 0 and g.out_channels % groups == 0
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)  # the default round_to
    assert model.stem[0].out_channels == 24 and g.out_channels == 24  # 32 * 0.7 = 22.4 -> 24
    _bn_consistent(model)
    _onnx_matches(model, tmp_path, X)


def test_macs_search_on_a_grouped_net_bisects_to_the_closest_reduction():
    """The search tried only ratio 0.9, which pruned nothing on the grouped conv, and called
    every target out of reach."""
    model = _built(Grouped)
    macs0 = count_macs(model, X)[0]
    prune_structured(model, StructuredConfig(macs_reduction=0.3), X)
    assert abs(1 - count_macs(model, X)[0] / macs0 - 0.3) < 0.1
    with pytest.raises(UserError, match=r"out of reach: the most this model allows .* is 7\d\.\d%"):
        prune_structured(_built(Residual), StructuredConfig(macs_reduction=0.85), X)


def test_default_rounding_is_the_cpu_block_and_every_no_op_says_so():
    assert StructuredConfig().round_to == 8
    with pytest.raises(UserError, match="head_ratio removes heads only together"):
        StructuredConfig(ratio=0.0, head_ratio=0.5)
    with pytest.raises(UserError, match="ratio=0 removes nothing"):
        prune_structured(_built(Residual), StructuredConfig(ratio=0.0), X)
    with pytest.raises(UserError, match="no attention module"):
        prune_structured(_built(Residual), StructuredConfig(ratio=0.5, head_ratio=0.5), X)
    with pytest.raises(UserError, match="removed nothing"):  # 16 wide: 8 is the only option
        prune_structured(_built(Residual), StructuredConfig(ratio=0.2, round_to=16), X)
