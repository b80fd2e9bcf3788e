"""RangeObserver: our calibrators behind torchao's PT2E observer interface."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

pytest.importorskip("torchao")

from edgeshrink.quant.calibrate import TensorStats, calibrate_range  # noqa: E402
from edgeshrink.quant.pt2e_observer import RangeObserver  # noqa: E402


def _observe(ctor, batches):
    obs = ctor()
    for b in batches:
        obs(b)
    return obs.calculate_qparams()


def test_percentile_clips_an_outlier_that_minmax_keeps():
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(rng.standard_normal(4096).astype(np.float32)) for _ in range(4)]
    batches[2][7] = 60.0  # one outlier
    kw = {"dtype": torch.qint8, "qscheme": torch.per_tensor_affine, "quant_min": -128,
          "quant_max": 127}  # fmt: skip
    s_mm, _ = _observe(RangeObserver.with_args(method="minmax", **kw), batches)
    s_pc, _ = _observe(RangeObserver.with_args(method="percentile", **kw), batches)
    lo, hi = float(torch.cat(batches).min()), 60.0
    assert float(s_mm) == pytest.approx((hi - lo) / 255, rel=1e-5)  # exact extremes kept
    assert float(s_pc) < 0.2 * float(s_mm)
    # the same range our calibrator picks on the same values (all kept: under max_values)
    ref_lo, ref_hi = calibrate_range(TensorStats.from_array(torch.cat(batches).numpy()),
                                     "percentile")
    assert float(s_pc) == pytest.approx((ref_hi - ref_lo) / 255, rel=0.02)


def test_histogram_budget_is_the_onnx_paths_spread_over_the_calls():
    """The observer keeps MAX_VALUES values per tensor over the whole calibration, as
    collect_stats does for ONNX Runtime, whatever the batch size."""
    from edgeshrink.quant.calibrate import MAX_VALUES

    kw = {"dtype": torch.qint8, "qscheme": torch.per_tensor_affine, "quant_min": -128,
          "quant_max": 127}  # fmt: skip
    x = torch.randn(2, 1 << 18)
    for calls in (1, 2, 8):
        obs = RangeObserver.with_args(method="percentile", calls=calls, **kw)()
        for _ in range(calls):
            obs(x)
        assert sum(v.size for v in obs._values) == pytest.approx(MAX_VALUES, abs=calls)
    mm = RangeObserver.with_args(method="minmax", **kw)()
    mm(x)
    assert mm._values == []  # min-max keeps no histogram


def test_mean_minmax_averages_each_samples_extremes():
    kw = {"dtype": torch.qint8, "qscheme": torch.per_tensor_affine, "quant_min": -128,
          "quant_max": 127}  # fmt: skip
    x = torch.zeros(4, 100)
    x[:, 0] = torch.tensor([-1.0, -1.0, -1.0, -5.0])
    x[:, 1] = torch.tensor([2.0, 2.0, 2.0, 10.0])
    scale, zp = _observe(RangeObserver.with_args(method="mean_minmax", **kw), [x])
    lo, hi = -2.0, 4.0  # the means of the per-sample minima and maxima
    assert float(scale) == pytest.approx((hi - lo) / 255, rel=1e-5)


def test_bias_correction_shifts_each_bias_by_its_weight_error_times_the_input_mean():
    """correct_biases against a straightforward reference: input means taken by hooks on
    the eager FP32 model, the shift (W_q - W) E[x] by einsum, for a conv, a depthwise conv
    and a linear."""
    pytest.importorskip("litert_torch")
    from torch import nn
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeshrink.quant.pt2e_observer import InputMeans, correct_biases
    from edgeshrink.targets.litert_quant import _quantizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    xs = [torch.randn(16, 3, 6, 6) + 0.7 for _ in range(3)]
    layers = {"conv2d": model[0], "conv2d_1": model[2], "linear": model[6]}
    seen = {k: [] for k in layers}
    hooks = [m.register_forward_pre_hook(lambda _m, a, k=k: seen[k].append(a[0]))
             for k, m in layers.items()]
    with torch.no_grad():
        for x in xs:
            model(x)
    for h in hooks:
        h.remove()
    ref_means = {k: torch.cat(v).transpose(0, 1).reshape(v[0].shape[1], -1).mean(1).double()
                 for k, v in seen.items()}

    prepared = prepare_pt2e(torch.export.export(model, (xs[0],)).module(),
                            _quantizer("minmax", calls=3))
    recorder = InputMeans(prepared)
    with torch.no_grad():
        for x in xs:
            prepared(x)
    means = recorder.means()
    converted = convert_pt2e(prepared, fold_quantize=False)
    nodes = {n.name: n for n in converted.graph.nodes}
    def get(arg):  # a get_attr node's tensor (dotted targets such as "0.bias")
        return functools.reduce(getattr, arg.target.split("."), converted) if getattr(
            arg, "op", "") == "get_attr" else arg

    before = {k: get(nodes[k].args[2]).detach().clone() for k in layers}
    assert correct_biases(converted, means) == 3
    for k, layer in layers.items():
        np.testing.assert_allclose(means[k], ref_means[k].numpy(), rtol=1e-5, atol=1e-6)
        dq = nodes[k].args[1]
        q = dq.args[0]
        wq = dq.target(q.target(*map(get, q.args)), *map(get, dq.args[1:]))
        err = (wq - layer.weight).detach().double().flatten(1)  # (out, in/groups * kernel)
        # depthwise: each output channel reads its own input channel
        shift = err.sum(1) * ref_means[k] if k == "conv2d_1" else err @ ref_means[k]
        assert shift.abs().max() > 1e-5  # the weights really are rounded
        after = get(nodes[k].args[2]).detach()
        np.testing.assert_allclose((before[k] - after).double().numpy(), shift.numpy(),
                                   rtol=1e-4, atol=1e-7)
