"""ExecuTorch target: .pte files built, run in ExecuTorch's runtime, and held to the bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("executorch")

from edgeshrink.bench.rt_executorch import open_session  # noqa: E402
from edgeshrink.targets import TargetError, get_target  # noqa: E402
from edgeshrink.targets.configs import ExecuTorchConfig  # noqa: E402
from edgeshrink.targets.executorch import TARGET, build_pte  # noqa: E402
from edgeshrink.transforms import TransformContext, apply_recipe  # noqa: E402


@pytest.fixture(scope="module")
def built(digits_task, tmp_path_factory):
    """FP32 and INT8 .pte of LeNet-5 digits, with their outputs over the eval set."""
    work = tmp_path_factory.mktemp("pte")
    out = {}
    for precision in ("fp32", "int8"):
        ctx = TransformContext(task=digits_task, workdir=work, name=precision)
        art = apply_recipe([ExecuTorchConfig(precision=precision)], ctx)
        out[precision] = (art, TARGET.outputs(art, digits_task.eval))
    return out


def test_registry_and_artifact(built):
    art, _ = built["int8"]
    assert get_target("pte") is TARGET
    assert art.runtime == "executorch" and art.precision == "int8"
    assert Path(art.path).suffix == ".pte" and Path(art.path).read_bytes()[4:8] == b"ET12"
    # LeNet-5 has only Conv/ReLU/MaxPool/Linear: XNNPACK takes every op
    assert art.notes["fully_delegated"] and art.notes["undelegated_ops"] == []
    assert art.notes["delegated_ops"] >= 8


def test_fp32_matches_pytorch(built, digits_task):
    _, outputs = built["fp32"]
    with torch.no_grad():
        ref = digits_task.model(torch.from_numpy(digits_task.eval.inputs[0])).numpy()
    assert outputs.shape == ref.shape == (len(digits_task.eval), 10)
    assert np.abs(outputs - ref).max() < 1e-4


def test_int8_smaller_and_agrees(built):
    (fp32, out32), (int8, out8) = built["fp32"], built["int8"]
    assert Path(int8.path).stat().st_size < 0.5 * Path(fp32.path).stat().st_size
    assert np.mean(out8.argmax(1) == out32.argmax(1)) >= 0.98
    assert np.abs(out8 - out32).max() > 0  # really quantized


def test_int8_within_half_point_of_fp32_in_executorch(built, digits_task):
    """The issue's bar for every zoo CNN (all five: benchmarks/bench_executorch.py)."""
    metric = digits_task.metric
    acc32 = metric(built["fp32"][1], digits_task.eval.targets)
    acc8 = metric(built["int8"][1], digits_task.eval.targets)
    assert acc32 > 95.0
    assert metric.drop(acc32, acc8) <= 0.5


def test_session_looks_like_onnxruntime(built, digits_task):
    art, outputs = built["fp32"]
    sess = open_session(art.path, threads=1)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", [1, 1, 8, 8], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("output", [1, 10], "tensor(float)")
    x = digits_task.eval.inputs[0][:5]  # not the file's batch: run in chunks of 1
    (y,) = sess.run(None, {"input": x})
    np.testing.assert_allclose(y, outputs[:5], rtol=0, atol=1e-6)
    assert sess.run(["output"], {"input": x[:1]})[0].shape == (1, 10)
    import executorch.extension.pybindings.portable_lib as lib

    loaded = sess._method
    two = open_session(art.path, threads=2)
    assert lib._threadpool_get_thread_count() == 2  # XNNPACK's pool follows the session
    for _ in range(3):  # each switch frees the pool the other session loaded with: reloads
        np.testing.assert_allclose(two.run(None, {"input": x})[0], y, rtol=0, atol=1e-6)
        np.testing.assert_allclose(sess.run(None, {"input": x})[0], y, rtol=0, atol=1e-6)
        assert lib._threadpool_get_thread_count() == 1
    assert sess._method is not loaded  # a fresh method on the new pool, not a cached one


def test_figures_of_the_shipped_file(built, digits_task):
    art, _ = built["int8"]
    x = tuple(a[:1] for a in digits_task.eval.inputs)
    fig = TARGET.figures(art, x, threads=(1,), budget_s=0.2)
    assert fig["size"] == Path(art.path).stat().st_size
    assert fig["by_threads"]["1"]["count"] > 0 and fig["by_threads"]["1"]["p50"] > 0
    # a fresh process that imports the runtime (and torch, which it needs) and runs the file
    assert 50 < fig["peak_mb"] < 4000


def test_prelu_after_linear_is_kept_out_of_xnnpack_and_said(tmp_path):
    """ExecuTorch 1.4.1's XNNPACK lowering fails on a 2-D PReLU (O-Net's prelu5): it runs on
    portable kernels instead, and the notes say the graph is only partly delegated."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.PReLU(8), nn.Linear(8, 3)).eval()
    x = torch.randn(1, 1, 4, 4)
    notes = build_pte(model, (x,), tmp_path / "m.pte")
    assert not notes["fully_delegated"]
    assert "aten::where.self" in notes["undelegated_ops"]
    assert "PReLU" in notes["kept_out_of_xnnpack"]
    y = TARGET.load(tmp_path / "m.pte")(x.numpy())
    np.testing.assert_allclose(y, model(x).detach().numpy(), atol=1e-5)


def test_op_without_kernel_is_named(tmp_path):
    """A Core ATen op that XNNPACK does not take and ExecuTorch has no kernel for: refused
    when built, not when the device loads the file."""
    with pytest.raises(TargetError, match=r"^ExecuTorch cannot run aten::avg_pool3d"):
        build_pte(nn.AvgPool3d(2), (torch.randn(1, 2, 4, 4, 4),), tmp_path / "p.pte")
    assert not (tmp_path / "p.pte").exists()


def test_op_outside_core_aten_is_named(tmp_path):
    class Erfinv(nn.Module):
        def forward(self, x):
            return torch.erfinv(torch.tanh(x))

    with pytest.raises(TargetError, match=r"^ExecuTorch cannot lower aten::erfinv: it is not"):
        build_pte(Erfinv(), (torch.randn(1, 4),), tmp_path / "e.pte")


def test_loading_code_and_missing(monkeypatch):
    code = TARGET.loading_code(None, file_name="model.pte")
    assert 'load_program("model.pte")' in code and "Module" in code
    compile(code, "snippet", "exec")
    import importlib.util

    from edgeshrink.bench import rt_executorch

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "pip install edgeshrink[executorch]" in rt_executorch.missing()
