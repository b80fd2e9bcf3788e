"""Seeds from the fixed plans: the space represents their MAC-targeted structured recipes
exactly (criterion, MAC target, distilled fine-tuning, INT8) and the quantization plan's
QAT, QAT is offered with and after structured pruning, and INT4 is offered only where its
group size divides the widths."""

import numpy as np

from edgeshrink.prune import StructuredConfig, UnstructuredConfig
from edgeshrink.quant import Int4WeightOnlyConfig, QatConfig, StaticInt8Config
from edgeshrink.search.seeding import complete, params_of, plan_recipes, seeds
from edgeshrink.search.space import MACS, SearchSpace, int4_group, random_params, recipe_of
from edgeshrink.study.plan import named_plan
from edgeshrink.train import FinetuneConfig


class _Train:
    targets = np.zeros(8, dtype=np.int64)

    def __len__(self):
        return 8


class _Task:  # what the plans look at: labelled training data, the model's layers
    train = _Train()

    def __init__(self):
        from torch import nn

        self.model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(),
                                   nn.Linear(8 * 6 * 6, 10))


def space(qat=False):
    return SearchSpace(groups={"0": [0.0, 0.5], "5": [0.0, 0.25]}, macs=list(MACS),
                       importance=["l1", "taylor"], quant_layers=["0", "5", "7"],
                       precisions=["fp32", "int8", "int4"] + (["qat8"] if qat else []),
                       int4_group=16, calibrators=["minmax", "mse"],
                       bias_correction=[False, True], epochs=[0, 1, 2], distill=[0.0, 0.5],
                       qat_epochs=[1, 2] if qat else [], qat_distill=[0.0, 0.5])


def scans():
    drop = {"0": [0.0, 0.1, 0.4], "5": [0.0, 0.1, 0.2]}
    macs = {"0": [0.0, 0.1, 0.3], "5": [0.0, 0.1, 0.2]}
    return {"groups": {"ratios": [0.0, 0.25, 0.5], "drop": drop, "macs_removed": macs},
            "int8": {"0": 0.0, "5": 0.0, "7": 0.0}}


def test_the_pruning_plans_channel_candidates_are_points_of_the_space():
    plan = {s.name: s.recipe for s in named_plan("pruning", _Task(), finetune_epochs=2)}
    for name in ("channels-30mac", "channels-50mac", "channels-50mac+int8-static"):
        params = params_of(space(), plan[name])
        assert params is not None, name
        assert recipe_of(space(), params) == plan[name]  # the very configs, every field
        assert params["importance"] == "taylor" and params["distill"] == 0.5
    assert params_of(space(), plan["magnitude-90+ft+distill"]) is None  # not in this space


def test_params_of_refuses_what_the_space_does_not_offer():
    s = space()
    ft = FinetuneConfig(epochs=2, distill=0.5)
    assert params_of(s, (StructuredConfig(macs_reduction=0.35, importance="taylor"), ft)) is None
    assert params_of(s, (StructuredConfig(macs_reduction=0.3, scope="global"), ft)) is None
    assert params_of(s, (StructuredConfig(macs_reduction=0.3), FinetuneConfig(epochs=3))) is None
    assert params_of(s, (UnstructuredConfig(0.5),)) is None
    got = params_of(s, (StructuredConfig(macs_reduction=0.3), ft, StaticInt8Config()))
    assert got["precision:pruned"] == "int8" and got["macs"] == 0.3


def test_plan_seeds_come_right_after_plain_int8_then_their_neighbours_and_the_light_end():
    plan = [s.recipe for s in named_plan("pruning", _Task(), finetune_epochs=2)]
    got = [recipe_of(space(), p) for p in seeds(space(), scans(), plans=plan)]
    assert got[0] == (StaticInt8Config(),)
    ft = FinetuneConfig(epochs=2, distill=0.5)
    s30, s50 = (StructuredConfig(macs_reduction=m, importance="taylor") for m in (0.3, 0.5))
    assert got[1:4] == [(s30, ft), (s50, ft), (s50, ft, StaticInt8Config())]
    s40, s60 = (StructuredConfig(macs_reduction=m, importance="taylor") for m in (0.4, 0.6))
    assert got[4:6] == [(s30, ft, StaticInt8Config()), (s60, ft, StaticInt8Config())]
    assert (s40, ft) not in got and (s60, ft) not in got  # FP32 ones: only in INT8
    s20 = StructuredConfig(macs_reduction=0.2, importance="taylor")  # the light end
    light = [r for r in got if r[0] == s20]
    assert [[c.kind for c in r] for r in light] == [["structured", "finetune", "int8_static"],
                                                    ["structured", "int8_static"]]
    assert light[0][-1].per_channel is False and light[0][-1].bias_correction is True
    assert len(set(got)) == len(got)


def test_int4_group_divides_the_most_linear_inputs():
    assert int4_group([400, 120, 84]) == 16  # LeNet-5: 32 divides none of them
    assert int4_group([256, 128, 96]) == 32
    assert int4_group([84, 120]) is None


def test_int4_only_where_widths_stay_and_with_the_chosen_group():
    s, rng = space(), np.random.default_rng(1)
    int4 = 0
    for _ in range(400):
        recipe = recipe_of(s, random_params(s, rng))
        if recipe and isinstance(recipe[-1], Int4WeightOnlyConfig):
            int4 += 1
            assert recipe == (Int4WeightOnlyConfig(group_size=16),)  # nothing pruned before
    assert int4 >= 5  # about 1 in 24 points: unpruned (1 in 8), then INT4 (1 in 3)
    assert complete(s, {"precision": "int4"})["precision"] == "int4"
    pruned_int4 = (StructuredConfig(macs_reduction=0.3), Int4WeightOnlyConfig(group_size=16))
    assert params_of(s, pruned_int4) is None  # widths changed: INT4 is not offered
    got = [recipe_of(s, p) for p in seeds(s, scans(), plans=[pruned_int4])]
    assert pruned_int4 not in got and (Int4WeightOnlyConfig(group_size=16),) in got


def test_mac_targets_stop_at_what_uniform_pruning_reaches():
    import copy
    import warnings
    from types import SimpleNamespace

    import pytest
    import torch
    from torch import nn

    from edgeshrink.errors import UserError
    from edgeshrink.prune.structured import prune_structured
    from edgeshrink.search.seeding import _most_macs_removed

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3),
                          nn.ReLU(), nn.Flatten(), nn.Linear(16 * 6 * 6, 10)).eval()
    example = (torch.randn(1, 1, 8, 8),)
    most = _most_macs_removed(SimpleNamespace(model=model, example_inputs=lambda: example))
    assert 0.3 < most < 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the closest reduction round_to=8 allows is ..."
        prune_structured(copy.deepcopy(model), StructuredConfig(
            macs_reduction=round(most - 0.05, 2)), example)  # within reach: builds
    with pytest.raises(UserError, match="out of reach"):
        prune_structured(copy.deepcopy(model), StructuredConfig(
            macs_reduction=min(round(most + 0.06, 2), 0.89)), example)


def test_the_space_offers_qat_alone_and_after_structured_pruning():
    s, rng = space(qat=True), np.random.default_rng(2)
    shapes = set()
    for _ in range(300):
        params = random_params(s, rng)
        recipe = recipe_of(s, params)
        if recipe and isinstance(recipe[-1], QatConfig):
            q = recipe[-1]
            assert (q.bits, q.act_bits) == (8, 8)  # the QDQ file ONNX Runtime runs
            assert q.epochs in (1, 2) and q.distill in (0.0, 0.5)
            assert not {"calibrator", "bias_correction"} & set(params)  # PTQ's choices only
            assert not any(k.startswith("q:") for k in params)
            shapes.add(tuple(c.kind for c in recipe))
    assert ("qat",) in shapes  # alone
    assert {("structured", "finetune", "qat"), ("structured_groups", "finetune", "qat"),
            ("structured", "qat")} <= shapes  # after pruning, with or without fine-tuning
    assert "qat8" not in space().precisions and space(qat=True).size() > space().size()


def test_the_qat_seed_is_the_quantization_plans_qat_int8_exactly():
    from edgeshrink.study.plan import named_plan

    task = _Task()
    plan = {x.name: x.recipe for x in named_plan("quantization", task, finetune_epochs=2)}
    want = plan["qat-int8"]
    assert want == (QatConfig(bits=8, epochs=1),)  # the plan's epochs: one fewer than 2
    params = params_of(space(qat=True), want)
    assert params == {**complete(space(qat=True), {"precision": "qat8"}), "qat_epochs": 1}
    assert recipe_of(space(qat=True), params) == want  # every field: lr, distill, scales
    assert params_of(space(qat=True), plan["qat-int4"]) is None  # 4-bit: simulated, not here
    assert params_of(space(), want) is None  # no QAT offered: no seed
    recipes = plan_recipes(task, 2)
    assert want in recipes and plan["int8-static-mse"] not in recipes  # QAT only from it
    got = [recipe_of(space(qat=True), p) for p in seeds(space(qat=True), scans(), plans=recipes)]
    assert want in got
    assert (QatConfig(bits=8, epochs=1, per_channel=False),) in got  # its per-tensor twin
    s30 = StructuredConfig(macs_reduction=0.3, importance="taylor")
    s40 = StructuredConfig(macs_reduction=0.4, importance="taylor")  # a MAC step further
    ft = FinetuneConfig(epochs=2, distill=0.5)
    assert (s30, ft, QatConfig(bits=8, epochs=1)) in got
    assert (s40, ft, QatConfig(bits=8, epochs=1, per_channel=False)) in got
    assert len([r for r in got if isinstance(r[-1], QatConfig)]) == 4


def test_a_speed_priority_starts_from_light_removal_in_int8_and_size_keeps_its_seeds():
    plan = [s.recipe for s in named_plan("pruning", _Task(), finetune_epochs=2)]
    s, sc = space(qat=True), scans()
    sc["int8"]["0"] = 0.9  # the INT8 scan: layer 0 alone in INT8 costs 0.9 point
    size = [recipe_of(s, p) for p in seeds(s, sc, plans=plan, priority="size")]
    assert size == [recipe_of(s, p) for p in seeds(s, sc, plans=plan)]  # as before
    ft = FinetuneConfig(epochs=2, distill=0.5)
    fast = []
    for importance in ("l1", "taylor"):
        s20 = StructuredConfig(macs_reduction=0.2, importance=importance)  # smallest step
        fast += [(s20, ft, StaticInt8Config(per_channel=False, exclude=("^0$",))),
                 (s20, ft, StaticInt8Config())]  # the sensitive layer FP32; plain
    for priority in ("speed", "energy"):
        got = [recipe_of(s, p) for p in seeds(s, sc, plans=plan, priority=priority)]
        assert got[0] == (StaticInt8Config(),)
        assert all(r in got for r in fast) and not any(r in size for r in fast)
        start = got.index(fast[0])
        assert got[start:start + 4] == fast  # right after the plans' seeds
        s30, s50 = (StructuredConfig(macs_reduction=m, importance="taylor") for m in (0.3, 0.5))
        assert (s30, ft) in size and (s30, ft) not in got  # FP32 pruned: its INT8 twin stays
        assert (s30, ft, StaticInt8Config()) in got and (s50, ft, StaticInt8Config()) in got
        assert not [r for r in got if len(r) > 1 and isinstance(r[-1], QatConfig)]
        assert len(got) <= len(size)  # the sampler keeps its room
        assert len(set(got)) == len(got)
