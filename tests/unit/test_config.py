import dataclasses

import pytest

from edgeshrink.config import (
    CONFIGS,
    config_from_dict,
    config_to_dict,
    recipe_from_yaml,
    recipe_to_yaml,
)
from edgeshrink.errors import UserError
from edgeshrink.prune import UnstructuredConfig
from edgeshrink.quant import DynamicInt8Config, Fp16Config, StaticInt8Config
from edgeshrink.train import FinetuneConfig


def test_every_registered_config_round_trips_through_yaml():
    import edgeshrink.transforms as t

    t.load_handlers()
    assert {"unstructured", "finetune", "int8_static", "int8_dynamic", "fp16"} <= set(CONFIGS)
    recipe = [cls() for cls in CONFIGS.values()]
    back = recipe_from_yaml(recipe_to_yaml(recipe))
    assert back == recipe
    assert all(dataclasses.is_dataclass(c) for c in back)


def test_recipe_preserves_order_and_values():
    recipe = [UnstructuredConfig(sparsity=0.8, scope="layer", exclude=("classifier.*",)),
              FinetuneConfig(epochs=2, distill=0.5), StaticInt8Config(calibrator="percentile")]
    back = recipe_from_yaml(recipe_to_yaml(recipe))
    assert back == recipe
    assert config_to_dict(back[0]) == {"kind": "unstructured", "sparsity": 0.8, "scope": "layer",
                                       "criterion": "magnitude", "exclude": ["classifier.*"],
                                       "seed": 0, "min_keep": 0.05}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_a_user_error(bad):
    with pytest.raises(UserError, match=r"sparsity must be in \[0.0, 1.0\)"):
        UnstructuredConfig(sparsity=bad)


def test_unknown_kind_and_field_name_the_problem():
    with pytest.raises(UserError, match="unknown transform kind 'nope'"):
        config_from_dict({"kind": "nope"})
    with pytest.raises(UserError, match="unknown field"):
        config_from_dict({"kind": "unstructured", "sparsty": 0.5})
    with pytest.raises(UserError, match="calibrator must be one of"):
        StaticInt8Config(calibrator="magic")


def test_configs_are_frozen():
    cfg = DynamicInt8Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.per_channel = False  # type: ignore[misc]
    assert Fp16Config().stage == "artifact"



def test_a_scalar_for_a_list_field_is_a_one_element_list():
    """`exclude: classifier.5` (YAML, --set, or a plain string in Python) names one layer;
    iterating it gave the regexes 'c', 'l', 'a', ... and a silently FP32 'int8' file."""
    from edgeshrink.commands.quantize import build_recipe

    (cfg,) = build_recipe("int8_static", ["exclude=classifier.5", "ops=Gemm"], None)
    assert cfg.exclude == ("classifier.5",) and cfg.ops == ("Gemm",)
    (cfg,) = build_recipe("int8_static", ["exclude=[a, b.1]"], None)
    assert cfg.exclude == ("a", "b.1")
    (cfg,) = recipe_from_yaml("- {kind: int8_dynamic, ops: Gemm, exclude: fc1}")
    assert cfg.ops == ("Gemm",) and cfg.exclude == ("fc1",)
    assert UnstructuredConfig(exclude="classifier").exclude == ("classifier",)
    assert StaticInt8Config(ops=["Conv"]).ops == ("Conv",)
    assert config_from_dict({"kind": "mixed", "levels": 4}).levels == (4,)


def test_a_recipe_read_first_thing_in_a_fresh_process_finds_every_kind(tmp_path):
    """`prune --recipe` read the YAML when only `finetune` was registered: every valid
    recipe was refused with "unknown transform kind 'unstructured'"."""
    import subprocess
    import sys

    (tmp_path / "p.yaml").write_text("- {kind: unstructured, sparsity: 0.5}\n")
    (tmp_path / "q.yaml").write_text("- {kind: int8_static, exclude: fc}\n")
    code = (
        "import sys; from pathlib import Path\n"
        "from edgeshrink.commands.prune import build_recipe as p\n"
        "from edgeshrink.commands.quantize import build_recipe as q\n"
        "a = p(None, None, [], 0, 0.0, Path(sys.argv[1]))\n"
        "b = q(None, [], Path(sys.argv[2]))\n"
        "print(a[0].kind, a[0].sparsity, b[0].kind, b[0].exclude)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.yaml"),
                          str(tmp_path / "q.yaml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["unstructured", "0.5", "int8_static", "('fc',)"]


def test_an_empty_recipe_is_not_a_candidate(tmp_path):
    from edgeshrink.study.plan import CandidateSpec, load_plan

    with pytest.raises(UserError, match="'nothing' has an empty recipe"):
        CandidateSpec("nothing", ())
    plan = tmp_path / "plan.yaml"
    plan.write_text("int8: [{kind: int8_static}]\nnothing: []\n")
    with pytest.raises(UserError, match="empty recipe"):
        load_plan(plan)
    plan.write_text("baseline: []\n")
    with pytest.raises(UserError, match="empty recipe"):
        load_plan(plan)
    assert CandidateSpec("baseline", ()).recipe == ()  # what run_study measures first
