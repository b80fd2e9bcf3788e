"""Per-token INT8: the ORT graph computes the per-row quantized product exactly, runs the
integer kernel, and beats per-tensor dynamic INT8 when one token carries an outlier."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.export import ort_session, run_onnx
from edgeshrink.quant import DynamicInt8Config, quantize
from edgeshrink.quant.pertoken import PerTokenInt8Config, quantize_weight


class Ffn(nn.Module):
    """A transformer FFN on (batch, tokens, features): Linear (MatMul + Add), GELU, Linear."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up, self.act, self.down = nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64)

    def forward(self, x):
        return self.down(self.act(self.up(x)))


def _tokens(outlier: float = 1.0) -> Dataset:
    x = np.random.default_rng(0).standard_normal((4, 16, 64)).astype(np.float32)
    x[:, 0] *= outlier  # one token (a delimiter, say) far larger than the rest
    return Dataset((x,), np.zeros(4))


def _reference(x: np.ndarray, w: np.ndarray, symmetric: bool) -> np.ndarray:
    """Straightforward per-row quantize -> integer product -> dequantize (numpy, float64)."""
    wq, sw = quantize_weight(w)
    lo, hi = np.minimum(x.min(-1, keepdims=True), 0), np.maximum(x.max(-1, keepdims=True), 0)
    if symmetric:
        s, zp = np.maximum(np.maximum(hi, -lo) / 127, 1e-8), 128.0
    else:
        s = np.maximum((hi - lo) / 255, 1e-8)
        zp = np.round(-lo / s)
    q = np.clip(np.round(x / s) + zp, 0, 255)  # ties: numpy and ORT both round half to even
    return ((q - zp) @ wq.astype(np.float64)) * s * sw


def _run(art, data: Dataset) -> np.ndarray:
    return run_onnx(ort_session(art.path, 1), data.inputs)


@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_numpy_reference(symmetric, tmp_path):
    model, data = nn.Linear(64, 32, bias=False).eval(), _tokens()
    art = quantize(model, PerTokenInt8Config(symmetric=symmetric), data, workdir=tmp_path)
    w = model.weight.detach().numpy().T
    ref = _reference(data.inputs[0].astype(np.float64), w, symmetric)
    assert np.abs(_run(art, data) - ref).max() < 1e-4 * np.abs(ref).max()


def test_artifact_runs_integer_kernel_and_stays_close(tmp_path):
    model, data = Ffn().eval(), _tokens()
    art = quantize(model, PerTokenInt8Config(), data, workdir=tmp_path)
    ops = [n.op_type for n in onnx.load(str(art.path)).graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and ops.count("QuantizeLinear") == 2
    assert "MatMul" not in ops and art.notes["layers"] == 2 and art.precision == "int8"
    with torch.no_grad():
        ref = model(torch.from_numpy(data.inputs[0])).numpy()
    assert np.abs(_run(art, data) - ref).max() < 0.02 * np.abs(ref).max()


def test_outlier_token_hurts_per_tensor_not_per_token(tmp_path):
    model, data = Ffn().eval(), _tokens(outlier=60.0)
    with torch.no_grad():
        ref = model(torch.from_numpy(data.inputs[0])).numpy()[:, 1:]  # the ordinary tokens
    err = {}
    for name, cfg in {"token": PerTokenInt8Config(), "tensor": DynamicInt8Config()}.items():
        out = _run(quantize(model, cfg, data, workdir=tmp_path / name), data)[:, 1:]
        err[name] = np.abs(out - ref).mean()
    assert err["token"] < err["tensor"] / 5, err


def test_only_named_layers_get_per_token_scales(tmp_path):
    art = quantize(Ffn().eval(), PerTokenInt8Config(layers=(r"^down$",)), _tokens(),
                   workdir=tmp_path)  # fmt: skip
    ops = [n.op_type for n in onnx.load(str(art.path)).graph.node]
    assert ops.count("QuantizeLinear") == 1 and "DynamicQuantizeLinear" in ops
    assert art.notes["layers"] == 1


def test_bad_layers_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="layers"):
        PerTokenInt8Config(layers=())
    with pytest.raises(UserError, match="not a valid regex"):
        PerTokenInt8Config(layers=("(",))
    with pytest.raises(UserError, match="matches no"):
        quantize(Ffn().eval(), PerTokenInt8Config(layers=("attention",)), _tokens(),
                 workdir=tmp_path)  # fmt: skip


def test_config_round_trips():
    cfg = PerTokenInt8Config(layers=(r"output\.dense$",), symmetric=True)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_pretrained_candidates_name_the_ffn_down_projection(tmp_path):
    from edgeshrink.quant.pretrained import narrowing_layers
    from edgeshrink.study.plans.pretrained import pretrained_candidates
    from edgeshrink.task import Task
    from edgeshrink.transforms import TransformContext, apply_recipe

    x = _tokens().inputs[0][:, 0]  # (batch, features): Linear exports as Gemm
    task = Task("ffn", Ffn().eval(), None, Dataset((x,), x), Dataset((x,), x))
    assert narrowing_layers(task.model) == ("^down$",)
    specs = {s.name: s for s in pretrained_candidates(task)}
    assert specs["int8-per-token-ffn-down"].recipe == (PerTokenInt8Config(layers=("^down$",)),)
    assert specs["int8-per-token-all-symmetric"].recipe == (PerTokenInt8Config(symmetric=True),)
    art = apply_recipe(list(specs["int8-per-token-ffn-down"].recipe),
                       TransformContext(task=task, workdir=tmp_path, name="pt"))  # fmt: skip
    assert art.notes["layers"] == 1
    with torch.no_grad():
        ref = task.model(torch.from_numpy(x)).numpy()
    assert np.abs(_run(art, task.eval) - ref).max() < 0.02 * np.abs(ref).max()


def test_kind_resolves_from_the_quant_package_alone():
    """A study resumed from results.json imports edgeshrink.quant, not this module."""
    import subprocess
    import sys

    code = ("import edgeshrink.quant; from edgeshrink.config import config_from_dict; "
            "print(config_from_dict({'kind': 'int8_per_token', 'symmetric': True}).symmetric)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
