"""Fake-quant core: exact references against PyTorch's own fake-quant ops, errors, LSQ grads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.quant.fake import (
    LsqQuantizer,
    QuantSpec,
    QuantWrap,
    fake_quantize,
    lsq_quantize,
    minmax_qparams,
    qrange,
    quantize_weight,
    unwrap,
    wrap_layers,
)


def test_qrange():
    assert qrange(8, True) == (-128, 127)
    assert qrange(8, False) == (0, 255)
    assert qrange(1, False) == (0, 1)
    assert qrange(16, True) == (-32768, 32767)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_per_channel_matches_torch(bits):
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3)
    for sym in (True, False):
        spec = QuantSpec(bits, symmetric=sym, granularity="channel")
        scale, zp = minmax_qparams(w, spec)
        ref = torch.fake_quantize_per_channel_affine(
            w, scale.flatten(), zp.flatten().int(), 0, spec.qmin, spec.qmax
        )
        assert torch.equal(quantize_weight(w, spec), ref)


def test_per_tensor_matches_torch_and_grad_is_clipped_ste():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    scale, zp = torch.tensor(0.02), torch.tensor(10.0)
    out = fake_quantize(x, scale, zp, 0, 255)
    ref = torch.fake_quantize_per_tensor_affine(x.detach(), 0.02, 10, 0, 255)
    assert torch.equal(out.detach(), ref)
    out.sum().backward()
    inside = (x.detach() >= -0.2) & (x.detach() <= (255 - 10) * 0.02)
    assert torch.equal(x.grad, inside.float())


def test_group_granularity_and_levels():
    torch.manual_seed(1)
    w = torch.randn(4, 32)
    q = quantize_weight(w, QuantSpec(3, granularity="group", group_size=8))
    for g in q.reshape(-1, 8):
        assert len(torch.unique(g)) <= 8
    # groups quantize more finely than one scale per channel
    err_group = (q - w).pow(2).mean()
    err_chan = (quantize_weight(w, QuantSpec(3, granularity="channel")) - w).pow(2).mean()
    assert err_group < err_chan


def test_errors_name_the_field():
    with pytest.raises(UserError, match="bits"):
        QuantSpec(bits=17)
    with pytest.raises(UserError, match="bits"):
        QuantSpec(bits=0)
    with pytest.raises(UserError, match="group_size 5 does not divide"):
        quantize_weight(torch.randn(4, 32), QuantSpec(4, granularity="group", group_size=5))


def test_lsq_step_gradient_matches_paper():
    # d out / d s = round(x/s) - x/s inside the range, qmin/qmax at the clamp, times g.
    x = torch.tensor([0.26, -0.9, 5.0, -5.0])
    s = torch.tensor(0.1, requires_grad=True)
    lsq_quantize(x, s, -8, 7).sum().backward()
    v = x / 0.1
    expected = torch.where(v > 7, 7.0, torch.where(v < -8, -8.0, torch.round(v) - v)).sum()
    g = 1.0 / (4 * 7) ** 0.5
    assert s.grad.item() == pytest.approx(expected.item() * g, rel=1e-5)


def test_activation_quantizer_observes_then_quantizes():
    q = LsqQuantizer(8)
    x = torch.linspace(-1.0, 3.0, 50)
    assert torch.equal(q(x), x)  # observing
    q.observing.fill_(False)
    y = q(x)
    assert len(torch.unique(y)) <= 256
    assert float((y - x).abs().max()) <= float(q.step.detach()) / 2 + 1e-6
    assert 0 <= float(q.zero_point) <= 255


def test_wrap_and_unwrap_round_trip():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(2, 1, 6, 6)
    spec = QuantSpec(4, granularity="channel")

    class W(nn.Module):
        def forward(self, w):
            return quantize_weight(w, spec)

    wrapped = wrap_layers(model, lambda n, m: QuantWrap(m, W(), None))
    assert set(wrapped) == {"0", "3"}
    y = model(x)
    plain = unwrap(model)
    assert not any(isinstance(m, QuantWrap) for m in plain.modules())
    assert torch.allclose(plain(x), y, atol=1e-6)
    assert len(torch.unique(plain[3].weight[0])) <= 16
