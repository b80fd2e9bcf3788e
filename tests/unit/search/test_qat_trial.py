"""A QAT trial of the search, alone and after structured pruning, is a recipe that
round-trips through YAML and builds into the QDQ file ONNX Runtime runs (lenet5-digits, one
epoch each: about a second of training)."""

import numpy as np
import onnx
import pytest
from torch import nn

from edgeshrink.config import recipe_from_yaml, recipe_to_yaml
from edgeshrink.search.seeding import complete
from edgeshrink.search.space import SearchSpace, recipe_of
from edgeshrink.study.plan import CandidateSpec
from edgeshrink.study.runner import evaluate_candidate


def space():
    return SearchSpace(groups={"features.0": [0.0, 0.25]}, macs=[0.3], importance=["l1", "taylor"],
                       precisions=["fp32", "int8", "qat8"], epochs=[0, 1], distill=[0.0, 0.5],
                       qat_epochs=[1], qat_distill=[0.0, 0.5])


@pytest.mark.parametrize("point, kinds", [
    ({"precision": "qat8", "per_channel": False}, ["qat"]),
    ({"prune": "macs", "macs": 0.3, "importance": "taylor", "epochs": 1, "distill": 0.5,
      "precision": "qat8"}, ["structured", "finetune", "qat"]),
])
def test_a_qat_trial_round_trips_and_builds(digits_task, tmp_path, point, kinds):
    s = space()
    recipe = recipe_of(s, complete(s, point))
    assert [c.kind for c in recipe] == kinds
    assert tuple(recipe_from_yaml(recipe_to_yaml(list(recipe)))) == recipe
    rec = evaluate_candidate(CandidateSpec("trial-000", recipe), digits_task, tmp_path,
                             baseline_value=99.0, threads=(1,), budget_s=0.02)
    proto = onnx.load(tmp_path / rec.artifact)
    ops = [n.op_type for n in proto.graph.node]
    # every Conv/Linear input (learned scales), and the next layer's Q after both convs'
    # Relu and the second MaxPool (so that ORT fuses QLinearConv)
    assert ops.count("QuantizeLinear") == 4 + 3
    int8 = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8
            and len(t.dims) > 1]
    assert len(int8) == 4  # every weight ships as int8
    shipped = sum(int(np.prod(t.dims)) for t in int8)
    weights = sum(m.weight.numel() for m in digits_task.model.modules()
                  if isinstance(m, nn.Conv2d | nn.Linear))
    assert (shipped < weights) == ("structured" in kinds)  # QAT trained the pruned model
    assert rec.notes["qdq_top1_agreement_with_qat_model"] >= 99.0
    assert rec.metric_drop <= 2.0  # one epoch recovers most of it (measured: +0.00 / +0.50)
    assert rec.size_bytes < 56_000 / 3  # int8 weights: about a quarter of FP32's 55.8 KB
