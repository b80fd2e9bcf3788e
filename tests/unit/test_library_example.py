"""The README's library example: the verbs return new models and leave their input alone,
so the fine-tuning distils from the real (unpruned) teacher and a later study still sees
the task's own baseline."""

from __future__ import annotations

import copy

import torch

from edgeshrink.measure.model_stats import weight_sparsity
from edgeshrink.prune import UnstructuredConfig, prune
from edgeshrink.quant import StaticInt8Config, quantize
from edgeshrink.train import FinetuneConfig, finetune
from edgeshrink.transforms import TransformContext, apply_recipe


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_readme_example_leaves_the_task_model_untouched(digits_task, tmp_path):
    task = copy.copy(digits_task)
    task.model = copy.deepcopy(digits_task.model)  # the session fixture stays clean either way
    before = _state(task.model)
    model = prune(task.model, UnstructuredConfig(sparsity=0.8, scope="global"))
    assert model is not task.model and _same(_state(task.model), before)
    assert weight_sparsity(model) > 0.79 and weight_sparsity(task.model) < 0.01
    pruned = _state(model)
    tuned = finetune(model, FinetuneConfig(epochs=1, distill=0.5), task.train, teacher=task.model)
    assert _same(_state(model), pruned) and _same(_state(task.model), before)
    assert not _same(_state(tuned), pruned) and weight_sparsity(tuned) > 0.79  # masks kept
    quantize(tuned, StaticInt8Config(), data=task.calibration, workdir=tmp_path)
    assert _same(_state(task.model), before)
    # what run_study does with the task afterwards: prune-50 of the *baseline* is 50 % sparse
    art = apply_recipe([UnstructuredConfig(sparsity=0.5, scope="global")],
                       TransformContext(task=task, workdir=tmp_path, name="prune-50"))
    assert abs(weight_sparsity(art.model) - 0.5) < 0.01
