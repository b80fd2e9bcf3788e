"""N:M sparsity: the exact pattern in every group, along input channels, and its statement."""

import itertools

import pytest
import torch
from prune_helpers import cnn, mlp
from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.prune import NMConfig, prune
from edgeshrink.prune.nm import HARDWARE_SUPPORT, from_groups, is_nm_sparse, nm_mask, to_groups


def _loop_mask(w: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Straightforward reference: groups of m consecutive input channels per (out, kh, kw)."""
    w4 = w if w.dim() == 4 else w[:, :, None, None]
    keep = torch.zeros_like(w4, dtype=torch.bool)
    o_, i_, kh_, kw_ = w4.shape
    for o, y, x, g in itertools.product(range(o_), range(kh_), range(kw_), range(i_ // m)):
        group = w4[o, g * m : (g + 1) * m, y, x].abs()
        for j in torch.topk(group, n).indices.tolist():
            keep[o, g * m + j, y, x] = True
    return keep.reshape(w.shape)


@pytest.mark.parametrize("shape", [(6, 16), (5, 8, 3, 3)])
@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (3, 8)])
def test_mask_equals_the_reference_loop(shape, n, m):
    torch.manual_seed(0)
    w = torch.randn(shape)
    assert torch.equal(nm_mask(w.abs(), n, m), _loop_mask(w, n, m))


def test_groups_round_trip_and_run_over_input_channels():
    w = torch.arange(2 * 8 * 3 * 3, dtype=torch.float32).reshape(2, 8, 3, 3)
    g = to_groups(w, 4)
    assert torch.equal(g[0], w[0, 0:4, 0, 0])  # first group: 4 input channels at (0, 0)
    assert torch.equal(from_groups(g, w.shape), w)


def test_prune_applies_2_4_to_every_compatible_layer_and_skips_the_rest():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(),
                          nn.Linear(8 * 4 * 4, 12), nn.Linear(12, 4))
    before = model[0].weight.detach().clone()
    model = prune(model, NMConfig())
    for layer in (model[2], model[4], model[5]):
        assert is_nm_sparse(layer.weight, 2, 4)
        assert int((layer.weight != 0).sum()) == layer.weight.numel() // 2  # exactly 2 per group
    assert torch.equal(model[0].weight, before)  # 3 input channels: left dense, as ASP does


def test_strict_mode_names_the_incompatible_layer():
    model = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 4))
    with pytest.raises(UserError, match=r"layer 0\.weight.*not a multiple of 4"):
        prune(model, NMConfig(skip_incompatible=False))


@pytest.mark.parametrize("make", [mlp, cnn])
def test_kept_weights_are_unchanged(make):
    model = make()
    orig = {n: p.detach().clone() for n, p in model.named_parameters()}
    model = prune(model, NMConfig(n=1, m=4))
    for n, p in model.named_parameters():
        nz = p != 0
        assert torch.equal(p[nz], orig[n][nz])


def test_config_and_hardware_statement():
    cfg = NMConfig(n=2, m=4)
    assert cfg.sparsity_kind == "n:m" and cfg.sparsity == 0.5
    for fact in ("Ampere", "cuSPARSELt", "TensorRT", "ONNX Runtime", "CPU"):
        assert fact in HARDWARE_SUPPORT
    with pytest.raises(UserError, match="nm.n"):
        NMConfig(n=4, m=4)
