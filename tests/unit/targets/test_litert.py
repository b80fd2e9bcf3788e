"""LiteRT target: .tflite files built by litert-torch, run in LiteRT's interpreter."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgeshrink.data import Dataset  # noqa: E402
from edgeshrink.targets import TargetError, get_target  # noqa: E402
from edgeshrink.targets.configs import LiteRTConfig  # noqa: E402
from edgeshrink.targets.tflite_file import (  # noqa: E402
    _plan,
    activation_lifetimes,
    arena_bytes,
    op_names,
)
from edgeshrink.task import Task  # noqa: E402
from edgeshrink.transforms import TransformContext, apply_recipe  # noqa: E402


def _build(task, tmp, cfg, name):
    return apply_recipe([cfg], TransformContext(task=task, workdir=tmp, name=name))


@pytest.fixture(scope="module")
def built(digits_task, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("litert")
    return {
        "fp32": _build(digits_task, tmp, LiteRTConfig(precision="fp32"), "fp32"),
        "int8": _build(digits_task, tmp, LiteRTConfig(precision="int8"), "int8"),
        "micro": _build(digits_task, tmp, LiteRTConfig(precision="int8", io="int8", micro=True),
                        "micro"),
    }


def _torch_out(task):
    with torch.no_grad():
        return task.model(torch.from_numpy(task.eval.inputs[0])).numpy()


def test_full_int8_runs_in_the_interpreter_and_agrees_with_pytorch(digits_task, built):
    art = built["int8"]
    assert art.runtime == "litert" and art.precision == "int8"
    out = get_target("litert").outputs(art, digits_task.eval)
    ref = _torch_out(digits_task)
    assert out.shape == ref.shape
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.97
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()
    assert np.abs(out - ref).max() > 0  # it really is quantized


def test_fp32_file_matches_pytorch_and_int8_is_smaller(digits_task, built):
    out = get_target("litert").outputs(built["fp32"], digits_task.eval)
    assert np.abs(out - _torch_out(digits_task)).max() < 1e-4
    assert built["int8"].path.stat().st_size < 0.5 * built["fp32"].path.stat().st_size


def test_lenet5_digits_full_int8_within_half_a_point_of_fp32(digits_task, built):
    target = get_target("litert")
    fp32 = digits_task.metric(target.outputs(built["fp32"], digits_task.eval),
                              digits_task.eval.targets)
    for name in ("int8", "micro"):  # float I/O, and every layer integer with int8 I/O
        int8 = digits_task.metric(target.outputs(built[name], digits_task.eval),
                                  digits_task.eval.targets)
        assert fp32 - int8 <= 0.5, (name, fp32, int8)


def test_int8_io_has_int8_tensors_and_float_io_has_float(built):
    from edgeshrink.bench.rt_litert import open_session

    micro = open_session(built["micro"].path)
    assert [a.type for a in micro.get_inputs() + micro.get_outputs()] == ["tensor(int8)"] * 2
    assert micro.get_inputs()[0].scale > 0
    plain = open_session(built["int8"].path)
    assert [a.type for a in plain.get_inputs() + plain.get_outputs()] == ["tensor(float)"] * 2


def test_int8_io_gives_the_same_answers_through_the_target(digits_task, built):
    target = get_target("litert")
    a = target.outputs(built["micro"], digits_task.eval)
    b = target.outputs(built["int8"], digits_task.eval)
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.99


def test_session_runs_a_batch_larger_than_the_converted_one(digits_task, built):
    from edgeshrink.bench.rt_litert import open_session

    sess = open_session(built["fp32"].path, threads=2)
    x = digits_task.eval.inputs[0][:5]
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    assert y.shape[0] == 5
    np.testing.assert_allclose(y, _torch_out(digits_task)[:5], atol=1e-4)


def test_micro_header_holds_the_file_bytes(built):
    art = built["micro"]
    header = art.path.with_name(art.notes["c_header"])
    text = header.read_text()
    assert "alignas(16) const unsigned char micro_tflite[]" in text
    body = text[text.index("{") + 1:text.index("};")]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == art.path.read_bytes()
    assert f"micro_tflite_len = {len(data)};" in text
    assert get_target("litert").shipped_files(art) == [art.path, header]
    figures = get_target("litert").figures(art, (np.zeros((1, 1, 8, 8), np.float32),), (1,),
                                           budget_s=0.05)
    assert figures["size"] == art.path.stat().st_size  # flash holds the bytes, not the text
    code = get_target("litert").loading_code(art, file_name="micro.tflite")
    assert "Interpreter" in code and "MicroMutableOpResolver" in code and "AddConv2D" in code


def test_arena_covers_the_largest_activation(built):
    data = built["micro"].path.read_bytes()
    lifetimes = activation_lifetimes(data)
    largest = max(size for size, _, _ in lifetimes)
    arena = built["micro"].notes["arena_bytes"]
    assert arena == arena_bytes(data)
    assert largest <= arena < sum(size for size, _, _ in lifetimes) + 4096
    assert set(built["micro"].notes["ops"]) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
                                                "FULLY_CONNECTED", "RESHAPE", "TRANSPOSE",
                                                "QUANTIZE", "DEQUANTIZE"}
    assert "DELEGATE" not in op_names(data)


def test_greedy_planner_reuses_memory_of_dead_tensors():
    # a (100 B, ops 0-1) and c (100 B, ops 2-3) never live together: one slot; b overlaps both
    assert _plan([(100, 0, 1), (48, 1, 2), (100, 2, 3)]) == 112 + 48
    assert _plan([(100, 0, 3), (100, 0, 3)]) == 224  # 16-byte aligned, side by side


class _Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return nn.functional.gelu(self.fc(x))


class _Bessel(nn.Module):
    def forward(self, x):
        return torch.special.i0(x)


def _vector_task(model):
    x = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    data = Dataset((x,), np.zeros(16, np.int64))
    return Task("t", model, data, data, data)


def test_an_op_tflm_lacks_is_named(tmp_path):
    with pytest.raises(TargetError, match="TensorFlow Lite Micro.*GELU"):
        _build(_vector_task(_Gelu()), tmp_path, LiteRTConfig(precision="fp32", micro=True), "g")
    assert not list(tmp_path.glob("*.h"))


def test_an_op_litert_cannot_convert_is_named_in_one_sentence(tmp_path):
    with pytest.raises(TargetError) as err:
        _build(_vector_task(_Bessel()), tmp_path, LiteRTConfig(precision="fp32"), "b")
    msg = str(err.value)
    assert "LiteRT" in msg and "i0" in msg and "\n" not in msg


def test_fp16_and_dynamic_int8_shrink_the_file(digits_task, built, tmp_path):
    fp32 = built["fp32"].path.stat().st_size
    for prec, most in (("fp16", 0.6), ("int8-dynamic", 0.4)):
        art = _build(digits_task, tmp_path, LiteRTConfig(precision=prec), prec)
        assert art.path.stat().st_size < most * fp32
        out = get_target("litert").outputs(art, digits_task.eval)
        assert np.mean(out.argmax(1) == _torch_out(digits_task).argmax(1)) >= 0.98


def test_peak_memory_of_a_fresh_process_that_runs_the_file(digits_task, built, tmp_path):
    """Through the same fresh-process helper as ExecuTorch and OpenVINO: float inputs are
    quantized for the int8-io file, and a file the interpreter refuses is one sentence."""
    target = get_target("litert")
    x = tuple(a[:1] for a in digits_task.eval.inputs)
    peaks = {k: target.peak_memory_mb(built[k], x, 1) for k in ("fp32", "micro")}
    for peak in peaks.values():  # python + numpy + the interpreter; not this process's torch
        assert 10 < peak < 1000, peaks
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(TargetError, match=r"^LiteRT could not run bad.tflite in a fresh process"):
        target.peak_memory_mb(type(built["fp32"])(path=bad, model=None), x, 1)


def test_bias_correction_changes_the_biases_and_keeps_accuracy(digits_task, built, tmp_path):
    """LeNet-5 digits: bias correction rewrites biases (the file differs, same size and
    ops), lowers the mean logit error against PyTorch, and keeps accuracy within half a point
    of FP32."""
    art = _build(digits_task, tmp_path, LiteRTConfig(precision="int8", bias_correction=True),
                 "int8-bc")
    plain = built["int8"]
    assert art.notes["bias_correction"] is True and plain.notes["bias_correction"] is False
    data, ref_data = art.path.read_bytes(), plain.path.read_bytes()
    assert data != ref_data and abs(len(data) - len(ref_data)) < 64
    assert op_names(data) == op_names(ref_data)
    target, ref = get_target("litert"), _torch_out(digits_task)
    out = target.outputs(art, digits_task.eval)
    bias = {n: np.abs((o - ref).mean(0)).mean()
            for n, o in (("bc", out), ("plain", target.outputs(plain, digits_task.eval)))}
    assert bias["bc"] < bias["plain"], bias
    fp32 = digits_task.metric(target.outputs(built["fp32"], digits_task.eval),
                              digits_task.eval.targets)
    assert fp32 - digits_task.metric(out, digits_task.eval.targets) <= 0.5
