"""AdaRound / bias correction beat min-max rounding at low bit-width."""

from __future__ import annotations

import pytest
import torch
from _tiny import accuracy, ctx_for
from torch import nn

from edgeshrink.errors import UserError
from edgeshrink.quant.advanced import AdvancedPtqConfig, adaround_weight
from edgeshrink.quant.fake import QuantSpec, quantize_weight
from edgeshrink.transforms import apply_recipe


def test_adaround_reduces_layer_output_error():
    torch.manual_seed(0)
    layer = nn.Linear(32, 16)
    x = torch.randn(256, 6) @ torch.randn(6, 32)  # correlated inputs, as in a real layer
    with torch.no_grad():
        target = layer(x)
    spec = QuantSpec(3, True, "channel")
    w_ada = adaround_weight(layer, x, target, spec, iters=300)
    w_mm = quantize_weight(layer.weight.detach(), spec)
    scale = layer.weight.detach().abs().amax(1, keepdim=True) / 3
    assert ((w_ada - layer.weight) / scale).abs().max() <= 1.0 + 1e-5  # floor or ceil only
    err = lambda w: (nn.functional.linear(x, w, layer.bias) - target).pow(2).mean()  # noqa: E731
    assert err(w_ada) < 0.7 * err(w_mm)


def test_beats_minmax_on_tiny_task(tiny, tmp_path):
    from edgeshrink.measure.artifact import evaluate_outputs
    from edgeshrink.quant.lowbit import LowBitConfig

    with torch.no_grad():
        ref = tiny.model(torch.from_numpy(tiny.eval.inputs[0])).numpy()

    def logit_mse(cfg, name):
        art = apply_recipe([cfg], ctx_for(tiny, tmp_path, name))
        return float(((evaluate_outputs(art.simulate, tiny.eval) - ref) ** 2).mean()), art

    mm, _ = logit_mse(LowBitConfig(bits=2, granularity="tensor"), "a")
    bc, _ = logit_mse(AdvancedPtqConfig(bits=2, granularity="tensor",
                                        method="bias_correction"), "b")
    ada, art = logit_mse(AdvancedPtqConfig(bits=2, granularity="tensor", iters=100,
                                           samples=128), "c")
    assert ada < 0.8 * mm and bc < mm
    assert accuracy(tiny, art) >= 90


def test_errors():
    with pytest.raises(UserError, match="method"):
        AdvancedPtqConfig(method="gptq")
