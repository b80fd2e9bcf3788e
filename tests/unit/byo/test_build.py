"""Splits are deterministic, stratified and disjoint; metrics score what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeshrink.byo.build import split_indices
from edgeshrink.byo.metrics import mean_cosine, metric_for, mse, topk_agreement
from edgeshrink.errors import UserError


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    ev, tr, cal = split_indices(len(labels), labels, seed=0)
    ev2, tr2, cal2 = split_indices(len(labels), labels, seed=0)
    assert all(np.array_equal(a, b) for a, b in ((ev, ev2), (tr, tr2), (cal, cal2)))
    assert len(ev) == 30 and len(tr) == 70 and set(ev).isdisjoint(tr)
    assert set(cal) <= set(tr)
    assert np.bincount(labels[ev]).tolist() == [12, 9, 6, 3]  # 30 % of every class
    assert not np.array_equal(split_indices(len(labels), labels, seed=1)[0], ev)


def test_too_little_data_is_refused():
    with pytest.raises(UserError, match="holds 3 samples"):
        split_indices(3, None, 0)


def test_agreement_cosine_and_mse_against_hand_computed_values():
    ref = np.array([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    out = np.array([[2.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    assert topk_agreement(1)(out, ref) == 50.0
    assert topk_agreement(2)(out, ref) == 100.0
    assert mean_cosine(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])) == pytest.approx(2 ** -0.5)
    assert mse(np.array([[1.0], [3.0]]), np.array([0.0, 1.0])) == pytest.approx(2.5)
    assert metric_for("mse").higher_is_better is False
    assert metric_for("top3-agreement").name == "top3_agreement"
    with pytest.raises(UserError, match="unknown --metric 'f1'"):
        metric_for("f1")


def test_regression_task_fine_tunes_with_its_own_loss(tmp_path):
    """A Task.loss_fn replaces cross-entropy: an MSE regression model really improves."""
    from edgeshrink.data import Dataset
    from edgeshrink.task import Task
    from edgeshrink.train import FinetuneConfig, fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)).astype(np.float32)
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    data = Dataset((x,), y)
    task = Task("reg", model, data, data, data, metric=metric_for("mse"),
                loss_fn=nn.functional.mse_loss)

    def err() -> float:
        with torch.no_grad():
            return mse(model(torch.from_numpy(x)).numpy(), y)

    before = err()
    from edgeshrink.transforms import TransformContext, apply_recipe

    art = apply_recipe([FinetuneConfig(epochs=20, lr=0.05, batch_size=32)],
                       TransformContext(task=task, workdir=tmp_path))  # a study's recipe step
    with torch.no_grad():
        assert mse(art.model(torch.from_numpy(x)).numpy(), y) < 0.01 * before
    torch.manual_seed(0)
    model = nn.Linear(4, 1)  # the default loop reads (N, 1) float targets as soft logits:
    fit(model, FinetuneConfig(epochs=20, lr=0.05, batch_size=32), data)  # a softmax over
    assert err() == pytest.approx(before)  # one output is constant, so nothing is learnt
