"""The search space: per-group widths really remove channels, per-layer sparsity is exact,
every point is a recipe that round-trips through YAML, seeds come from the scans."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.config import recipe_from_yaml, recipe_to_yaml
from edgeshrink.errors import UserError
from edgeshrink.prune import GroupStructuredConfig, LayerSparsityConfig
from edgeshrink.prune.layerwise import prunable_groups, prune_groups
from edgeshrink.search.space import SearchSpace, random_params, recipe_of
from edgeshrink.transforms import HANDLERS, load_handlers


def lenet():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


EXAMPLE = (torch.randn(1, 1, 8, 8),)


def test_groups_are_named_by_root_layer_and_exclude_the_output():
    assert sorted(prunable_groups(lenet(), EXAMPLE)) == ["0", "2", "5"]


def test_each_group_loses_its_own_share_of_channels():
    m = prune_groups(lenet(), GroupStructuredConfig(("0", "5"), (0.5, 0.75)), EXAMPLE)
    assert m[0].out_channels == 4 and m[2].in_channels == 4  # the next layer follows
    assert m[2].out_channels == 16  # a group not named keeps every channel
    assert m[5].out_features == 8 and m[7].in_features == 8
    assert m(*EXAMPLE).shape == (1, 10)


def test_layer_sparsity_is_exact_per_layer():
    load_handlers()
    m = HANDLERS[LayerSparsityConfig](
        LayerSparsityConfig(("0.weight", "5.weight"), (0.5, 0.9)), lenet(), None)
    for name, want in (("0.weight", 0.5), ("5.weight", 0.9), ("2.weight", 0.0)):
        w = dict(m.named_parameters())[name]
        assert float((w == 0).float().mean()) == pytest.approx(want, abs=1 / w.numel())


def test_bad_layer_configs_name_the_field():
    with pytest.raises(UserError, match="same length"):
        GroupStructuredConfig(("0",), (0.5, 0.5))
    with pytest.raises(UserError, match="value"):
        LayerSparsityConfig(("0.weight",), (1.0,))
    with pytest.raises(UserError, match="no layer named 'nope'"):
        prune_groups(lenet(), GroupStructuredConfig(("nope",), (0.5,)), EXAMPLE)


def space():
    return SearchSpace(groups={"0": [0.0, 0.5], "5": [0.0, 0.25, 0.75]},
                       layers={"2.weight": [0.0, 0.8]}, quant_layers=["0", "2", "5", "7"],
                       precisions=["fp32", "int8", "fp16"], calibrators=["minmax", "mse"],
                       bias_correction=[False, True], epochs=[0, 1, 2])


def test_every_random_point_is_a_recipe_that_round_trips():
    s, rng = space(), np.random.default_rng(0)
    kinds = set()
    for _ in range(40):
        recipe = recipe_of(s, random_params(s, rng))
        assert tuple(recipe_from_yaml(recipe_to_yaml(list(recipe)))) == recipe
        kinds |= {c.kind for c in recipe}
    assert kinds >= {"structured_groups", "layer_sparsity", "finetune", "int8_static", "fp16"}


def test_a_point_maps_to_the_configs_it_names():
    params = {"w:0": 0.5, "w:5": 0.0, "s:2.weight": 0.8, "epochs": 2, "precision": "int8",
              "q:0": False, "q:2": True, "q:5": True, "q:7": True, "calibrator": "mse", "per_channel": False,
              "bias_correction": True}
    groups, sparse, ft, q = recipe_of(space(), params)
    assert (groups.layers, groups.ratios) == (("0",), (0.5,))
    assert (sparse.layers, sparse.sparsities) == (("2.weight",), (0.8,))
    assert ft.epochs == 2
    assert (q.kind, q.calibrator, q.per_channel, q.bias_correction, q.exclude) == (
        "int8_static", "mse", False, True, (r"^0$",))
    # no pruning: no fine-tuning step, whatever epochs says
    assert [c.kind for c in recipe_of(space(), {"precision": "fp16", "epochs": 2})] == ["fp16"]


def test_space_round_trips_through_plain_data():
    s = space()
    assert SearchSpace.from_dict(copy.deepcopy(s.to_dict())) == s
    assert s.size() == 2 * 3 * 2 * 3 * 2 * 2 * 2 * 3 * 2**4


def test_seeds_fix_every_dimension_they_leave_out():
    from edgeshrink.search.seeding import complete

    s = space()
    full = complete(s, {"precision": "int8"})
    assert full["w:0"] == 0.0 and full["s:2.weight"] == 0.0 and full["q:7"] is True
    assert "epochs" not in full  # nothing pruned: no fine-tuning dimension
    assert [c.kind for c in recipe_of(s, full)] == ["int8_static"]
    assert complete(s, {"w:5": 0.25})["epochs"] == 0
