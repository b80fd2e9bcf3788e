"""Low-bit weights: binary/ternary maths, packed sizes, simulated artifacts, errors."""

from __future__ import annotations

import math

import pytest
import torch
from _tiny import accuracy, ctx_for

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.errors import UserError
from edgeshrink.quant.lowbit import LowBitConfig, binarize, packed_bytes, ternarize
from edgeshrink.transforms import apply_recipe


def test_binarize_and_ternarize_reference():
    w = torch.tensor([[0.5, -1.0, 0.1, -0.2], [2.0, 0.0, -2.0, 0.4]])
    assert torch.allclose(binarize(w), torch.tensor([[.45, -.45, .45, -.45], [1.1, 1.1, -1.1, 1.1]]))
    # row 0: mean|w| = 0.45, delta = 0.315 -> keep 0.5, -1.0, alpha = 0.75
    t = ternarize(w)
    assert torch.allclose(t[0], torch.tensor([0.75, -0.75, 0.0, 0.0]))
    assert len(torch.unique(t[1])) == 3


def test_packed_bytes_counts_bits_scales_and_fp32_rest():
    m = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Linear(6, 3, bias=False))
    size = packed_bytes(m, {"0": (4, 6), "1": (1, 3)})
    assert size == math.ceil(4 * 60 / 8) + 4 * 6 + 4 * 6 + math.ceil(18 / 8) + 4 * 3


def test_config_errors_and_round_trip():
    with pytest.raises(UserError, match="bits"):
        LowBitConfig(bits=0)
    with pytest.raises(UserError, match="scheme"):
        LowBitConfig(scheme="quaternary")
    with pytest.raises(UserError, match="group_size"):
        LowBitConfig(granularity="group", group_size=0)
    cfg = LowBitConfig(bits=3, scheme="ternary", ends_bits=8)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_group_that_does_not_divide_names_the_fix(tiny, tmp_path):
    with pytest.raises(UserError, match="group_size 7 does not divide"):
        apply_recipe([LowBitConfig(bits=4, granularity="group", group_size=7)],
                     ctx_for(tiny, tmp_path))


@pytest.mark.parametrize("cfg,bits", [
    (LowBitConfig(bits=4), 4), (LowBitConfig(scheme="binary"), 1),
    (LowBitConfig(scheme="ternary"), 2)])
def test_simulated_artifact(tiny, tmp_path, cfg, bits):
    art = apply_recipe([cfg], ctx_for(tiny, tmp_path))
    assert art.runtime == "simulated" and art.simulate is not None
    n_w = sum(p.numel() for n, p in tiny.model.named_parameters() if n.endswith("weight")
              and p.dim() > 1)
    fp32 = sum(p.numel() for p in tiny.model.state_dict().values()) * 4
    assert art.size_encoded_bytes < fp32 - n_w * (32 - bits) / 8 + 4 * 50
    w = art.model.get_submodule("classifier.3").weight
    assert len(torch.unique(w[0])) <= 2 ** bits
    assert accuracy(tiny, art) >= (80 if bits == 4 else 40)
