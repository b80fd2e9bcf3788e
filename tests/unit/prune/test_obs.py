"""SparseGPT-like OBS and Wanda: exact references, reconstruction quality, patterns, errors."""

import copy

import numpy as np
import pytest
import torch
from prune_helpers import cnn, data, mlp, task
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.prune import SparseGPTConfig, UnstructuredConfig, WandaConfig, prune
from edgeshrink.prune.nm import is_nm_sparse
from edgeshrink.prune.obs import (
    layer_inputs_to_columns,
    mean_shift,
    prune_sparsegpt,
    prune_wanda,
    sparsegpt_prune_matrix,
    wanda_mask,
    wanda_scores,
    weight_matrix,
)
from edgeshrink.transforms import TransformContext


def _correlated_inputs(n=512, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * torch.logspace(-1, 1, d)  # correlated, uneven scales
    return (torch.randn(n, d, generator=g) @ mix).double()


def test_wanda_scores_equal_a_straightforward_loop():
    layer = nn.Linear(6, 3).double()
    x = _correlated_inputs(40, 6)
    norms = [sum(float(x[s, j]) ** 2 for s in range(40)) ** 0.5 for j in range(6)]
    ref = [[abs(float(layer.weight.detach()[i, j])) * norms[j] for j in range(6)] for i in range(3)]
    cols = layer_inputs_to_columns(layer, x)
    got = wanda_scores(layer.weight.detach(), cols.pow(2).sum(1).sqrt())
    np.testing.assert_allclose(got.numpy(), np.array(ref), rtol=1e-12)


def test_wanda_prunes_per_output_row_and_in_nm_groups():
    torch.manual_seed(0)
    s = torch.rand(7, 16)
    keep = wanda_mask(s, 0.25)
    assert (keep.sum(1) == 12).all()
    for i in range(7):  # the 4 dropped in each row are its 4 smallest
        assert set(torch.argsort(s[i])[:4].tolist()) == set((~keep[i]).nonzero().flatten().tolist())
    assert is_nm_sparse(s * wanda_mask(s, 0.0, 2, 4), 2, 4)


def test_conv_columns_reproduce_the_convolution():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    cols = layer_inputs_to_columns(conv, x)  # (in*kh*kw, N*L), columns ordered (kh, kw, in)
    y = (weight_matrix(conv.weight) @ cols).reshape(6, 3, -1).transpose(0, 1)
    np.testing.assert_allclose(y.reshape(3, 6, 5, 5).detach().numpy(),
                               conv(x).detach().numpy(), atol=1e-10)


@pytest.mark.parametrize("pattern", [(0, 0), (2, 4)])
def test_sparsegpt_reconstructs_better_than_magnitude_on_one_linear(pattern):
    n, m = pattern
    torch.manual_seed(0)
    w = torch.randn(16, 32, dtype=torch.float64)
    x = _correlated_inputs(512, 32).T  # (features, tokens)
    h = 2 * x @ x.T / x.shape[1]
    pruned = sparsegpt_prune_matrix(w, h, 0.5, n=n, m=m, blocksize=8, damp=0.01)
    if n:
        assert is_nm_sparse(pruned, 2, 4)
        magnitude = w * wanda_mask(w.abs(), 0.0, 2, 4)
    else:
        assert int((pruned == 0).sum()) == w.numel() // 2
        magnitude = w * wanda_mask(w.abs(), 0.5)
    err_obs = torch.linalg.norm(w @ x - pruned @ x)
    err_mag = torch.linalg.norm(w @ x - magnitude @ x)
    assert float(err_obs) < 0.95 * float(err_mag)


def test_sparsegpt_single_pruned_column_is_the_exact_obs_update():
    """One weight per row, in the first column: SparseGPT's update is then exact OBS, i.e.
    the least-squares optimum of the other weights under the dampened Hessian."""
    torch.manual_seed(1)
    w = torch.randn(5, 6, dtype=torch.float64)
    w[:, 0] *= 1e-3  # the smallest saliency: column 0 is what gets pruned
    x = _correlated_inputs(200, 6).T
    h = 2 * x @ x.T / x.shape[1]
    out = sparsegpt_prune_matrix(w, h, 1 / 6, blocksize=6, damp=0.01)
    hd = h + 0.01 * torch.diag(h).mean() * torch.eye(6, dtype=torch.float64)
    expected = w[:, 1:] + (torch.linalg.solve(hd[1:, 1:], hd[1:, :1]) @ w[:, :1].T).T
    assert bool((out[:, 0] == 0).all())
    np.testing.assert_allclose(out[:, 1:].numpy(), expected.numpy(), rtol=1e-8, atol=1e-10)


def test_sparsegpt_with_no_pruning_is_the_identity():
    w = torch.randn(4, 8, dtype=torch.float64)
    x = _correlated_inputs(64, 8).T
    out = sparsegpt_prune_matrix(w, 2 * x @ x.T / 64, 0.0, blocksize=4)
    np.testing.assert_allclose(out.numpy(), w.numpy(), atol=1e-10)


def _err(a, b, x):
    with torch.no_grad():
        return float(torch.linalg.norm(a(x) - b(x)) / torch.linalg.norm(b(x)))


@pytest.mark.parametrize("make", [mlp, cnn])
def test_one_shot_models_keep_closer_to_dense_than_magnitude(make):
    shape = (1, 8, 8) if make is mlp else (4, 8, 8)
    dense = make()
    calib = data(256, shape, 5)
    x = torch.from_numpy(data(256, shape, 6).inputs[0])
    mag = prune(copy.deepcopy(dense), UnstructuredConfig(0.6, scope="layer"))
    gpt = prune_sparsegpt(copy.deepcopy(dense), SparseGPTConfig(0.6), calib)
    wan = prune_wanda(copy.deepcopy(dense), WandaConfig(0.6), calib)
    for model in (gpt, wan):
        for name, p in model.named_parameters():
            if p.dim() > 1:
                assert float((p == 0).float().mean()) == pytest.approx(0.6, abs=0.03), name
    assert _err(gpt, dense, x) < 0.9 * _err(mag, dense, x)
    assert _err(wan, dense, x) < 1.5 * _err(mag, dense, x)  # no criterion collapse


def test_wanda_beats_magnitude_when_inputs_have_outlier_features():
    """Wanda's premise (Sun et al. 2023): a few input features much larger than the rest."""
    torch.manual_seed(0)
    layer = nn.Linear(64, 16, bias=False)
    x = torch.randn(512, 64)
    x[:, :4] *= 20.0
    calib = Dataset((x.numpy(),), np.zeros(512, np.int64))
    wan = prune_wanda(copy.deepcopy(layer), WandaConfig(0.5), calib)
    mag = prune(copy.deepcopy(layer), UnstructuredConfig(0.5, scope="layer"))
    assert _err(wan, layer, x) < 0.7 * _err(mag, layer, x)


def _offset_inputs(n=512, d=32, seed=0):
    """Post-ReLU-like inputs: every feature has a large positive mean."""
    return (_correlated_inputs(n, d, seed).abs() + 3.0).float()


def test_wanda_bias_correction_restores_the_mean_output_and_lowers_the_error():
    torch.manual_seed(0)
    layer = nn.Linear(32, 16)
    x = _offset_inputs()
    calib = Dataset((x.numpy(),), np.zeros(len(x), np.int64))
    plain = prune_wanda(copy.deepcopy(layer), WandaConfig(0.5), calib)
    fixed = prune_wanda(copy.deepcopy(layer), WandaConfig(0.5, bias_correction=True), calib)
    with torch.no_grad():
        np.testing.assert_allclose(fixed(x).mean(0).numpy(), layer(x).mean(0).numpy(), atol=2e-4)
        assert float((plain(x).mean(0) - layer(x).mean(0)).abs().max()) > 0.1  # it had a shift
    assert float((fixed.weight == 0).float().mean()) == 0.5
    assert _err(fixed, layer, x) < 0.5 * _err(plain, layer, x)


def test_wanda_bias_correction_scores_with_centred_norms():
    """A constant input feature has centred norm 0: corrected Wanda prunes it first (the bias
    takes over its contribution); plain Wanda keeps it (its raw norm is the largest)."""
    layer = nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.5, 0.6, 0.7]]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    x[:, 0] = 5.0
    calib = Dataset((x.numpy(),), np.zeros(256, np.int64))
    plain = prune_wanda(copy.deepcopy(layer), WandaConfig(0.25), calib)
    fixed = prune_wanda(copy.deepcopy(layer), WandaConfig(0.25, bias_correction=True), calib)
    wp, wf = plain.weight.detach()[0], fixed.weight.detach()[0]
    assert float(wp[0]) == 1.0 and float(wp[1]) == 0.0
    assert float(wf[0]) == 0.0
    assert float(fixed.bias.detach()[0]) == pytest.approx(float(layer.bias.detach()[0]) + 5.0, abs=1e-5)


def test_mean_shift_of_a_conv_is_the_per_channel_mean_output_error():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1).double()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64) + 2.0
    w = weight_matrix(conv.weight.detach())
    keep = torch.rand(w.shape) > 0.5
    cols = layer_inputs_to_columns(conv, x)
    err = ((w * ~keep) @ cols).mean(1)
    np.testing.assert_allclose(mean_shift(w, keep, cols.mean(1)).numpy(), err.numpy(), atol=1e-12)


def test_wanda_bias_correction_leaves_bias_free_layers_to_the_plain_score():
    torch.manual_seed(0)
    layer = nn.Linear(32, 16, bias=False)
    calib = Dataset((_offset_inputs().numpy(),), np.zeros(512, np.int64))
    plain = prune_wanda(copy.deepcopy(layer), WandaConfig(0.5), calib)
    fixed = prune_wanda(copy.deepcopy(layer), WandaConfig(0.5, bias_correction=True), calib)
    assert fixed.bias is None
    assert torch.equal(plain.weight, fixed.weight)


def test_handlers_use_the_task_calibration_and_support_2_4():
    t = task(cnn(), (4, 8, 8))
    ctx = TransformContext(t, None)
    for cfg in (SparseGPTConfig(pattern="2:4", blocksize=16), WandaConfig(pattern="2:4")):
        model = prune(copy.deepcopy(t.model), cfg, ctx)
        assert cfg.sparsity_kind == "n:m"
        assert is_nm_sparse(model[2].weight, 2, 4) and is_nm_sparse(model[5].weight, 2, 4)
        assert is_nm_sparse(model[0].weight, 2, 4)  # 4 input channels: compatible


def test_depthwise_conv_is_refused_by_name():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(UserError, match=r"layer 0\.weight .*groups=4"):
        prune_wanda(model, WandaConfig(), data(8, (4, 8, 8)))


@pytest.mark.parametrize("bad", [dict(pattern="4:2"), dict(pattern=124), dict(sparsity=1.0),
                                 dict(pattern="2:4", blocksize=6)])
def test_bad_configs_are_user_errors(bad):
    with pytest.raises(UserError):
        SparseGPTConfig(**bad)


@pytest.mark.parametrize("bad", [dict(group="row"), dict(bias_correction="yes")])
def test_bad_wanda_configs_are_user_errors(bad):
    with pytest.raises(UserError, match="wanda"):
        WandaConfig(**bad)
