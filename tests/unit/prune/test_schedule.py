"""Iterative prune-and-retrain and Zhu & Gupta's cubic gradual schedule."""

import copy

import pytest
import torch
from prune_helpers import mlp, task

from edgeshrink.errors import UserError
from edgeshrink.measure.model_stats import weight_sparsity
from edgeshrink.prune import GradualConfig, IterativeConfig, prune
from edgeshrink.prune import schedule as sched
from edgeshrink.prune.schedule import cubic_sparsity, iterative_sparsities
from edgeshrink.transforms import TransformContext


def test_cubic_schedule_values():
    # Zhu & Gupta 2017 eq. (1): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3
    assert cubic_sparsity(0, 0.1, 0.9, 10, 110) == 0.1  # before t0
    assert cubic_sparsity(10, 0.1, 0.9, 10, 110) == pytest.approx(0.1)
    assert cubic_sparsity(60, 0.1, 0.9, 10, 110) == pytest.approx(0.9 - 0.8 * 0.125)
    assert cubic_sparsity(35, 0.0, 0.8, 10, 110) == pytest.approx(0.8 - 0.8 * 0.75**3)
    assert cubic_sparsity(110, 0.1, 0.9, 10, 110) == 0.9
    assert cubic_sparsity(500, 0.1, 0.9, 10, 110) == 0.9
    values = [cubic_sparsity(t, 0.0, 0.9, 0, 100) for t in range(101)]
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(s >= 0 for s in steps) and steps[0] > steps[-1]  # fast first, then slower


def test_iterative_steps_remove_the_same_fraction_of_survivors():
    s = iterative_sparsities(0.9, 3)
    assert s[-1] == pytest.approx(0.9)
    survivors = [1.0] + [1 - v for v in s]
    ratios = [b / a for a, b in zip(survivors, survivors[1:], strict=False)]
    assert ratios == pytest.approx([0.1 ** (1 / 3)] * 3)


def _record_sparsity(monkeypatch):
    seen = []
    real = sched._prune_to

    def spy(weights, sparsity, scope):
        seen.append(sparsity)
        return real(weights, sparsity, scope)

    monkeypatch.setattr(sched, "_prune_to", spy)
    return seen


def test_gradual_prunes_on_schedule_while_training(monkeypatch):
    t = task(mlp())
    seen = _record_sparsity(monkeypatch)
    cfg = GradualConfig(0.0, 0.8, start_epoch=1, end_epoch=2, epochs=3, frequency=1,
                        batch_size=32)  # 6 steps per epoch: prune at steps 6..12
    model = prune(copy.deepcopy(t.model), cfg, TransformContext(t, None))
    assert seen == pytest.approx([cubic_sparsity(s, 0.0, 0.8, 6, 12) for s in range(6, 13)])
    assert weight_sparsity(model) == pytest.approx(0.8, abs=1e-3)
    changed = any(not torch.equal(a, b) for a, b in
                  zip(model.parameters(), t.model.parameters(), strict=True))
    assert changed and not model.training


def test_iterative_ends_at_target_and_masks_survive_retraining():
    t = task(mlp())
    model = prune(copy.deepcopy(t.model), IterativeConfig(0.85, steps=2, distill=0.5),
                  TransformContext(t, None, teacher=t.model))
    assert weight_sparsity(model) == pytest.approx(0.85, abs=1e-3)


@pytest.mark.parametrize("bad", [dict(initial=0.5, final=0.3), dict(end_epoch=9.0, epochs=4),
                                 dict(final=1.0), dict(frequency=0)])
def test_gradual_config_errors(bad):
    with pytest.raises(UserError):
        GradualConfig(**bad)


def test_schedules_need_a_task():
    with pytest.raises(UserError, match="needs a task"):
        prune(mlp(), IterativeConfig())
