"""The precision each op of a shipped file runs in, and the estimate that follows from it."""

from __future__ import annotations

import pytest

from edgeshrink.devices import load_profile
from edgeshrink.devices.estimate import Workload, estimate
from edgeshrink.measure.op_precision import macs_by_precision, onnx_op_macs
from edgeshrink.quant.ort import DynamicInt8Config, Fp16Config, StaticInt8Config
from edgeshrink.transforms import TransformContext, apply_recipe

# LeNet5Digits on 8x8 inputs, by hand: conv 1->16 3x3 at 8x8, conv 16->32 3x3 at 4x4,
# Linear 128->64, Linear 64->10.
CONV = 16 * 8 * 8 * 9 + 32 * 4 * 4 * 16 * 9
FC = 128 * 64 + 64 * 10


@pytest.fixture(scope="module")
def files(digits_task, tmp_path_factory):
    d = tmp_path_factory.mktemp("prec")
    out = {}
    for name, recipe in (("fp32", []), ("dyn", [DynamicInt8Config()]),
                         ("static", [StaticInt8Config()]), ("fp16", [Fp16Config()])):
        ctx = TransformContext(task=digits_task, workdir=d, name=name)
        out[name] = apply_recipe(recipe, ctx).path
    return out


def test_split_matches_a_hand_count(files):
    dyn = macs_by_precision(files["dyn"])  # ORT dynamic: MatMul/Gemm only, Conv stays fp32
    assert dyn == {"fp32": CONV, "int8": FC}
    assert 0 < dyn["int8"] / sum(dyn.values()) < 1
    assert dyn["int8"] / sum(dyn.values()) == pytest.approx(8832 / 91776)
    assert macs_by_precision(files["static"]) == {"int8": CONV + FC}
    assert macs_by_precision(files["fp16"]) == {"fp16": CONV + FC}
    assert macs_by_precision(files["fp32"]) == {"fp32": CONV + FC}
    assert [p for _, p, _ in onnx_op_macs(files["dyn"])] == ["fp32", "fp32", "int8", "int8"]


def test_dynamic_int8_cnn_is_not_credited_with_int8_speed(files):
    pi = load_profile("raspberry-pi-4")
    assert pi.accelerates["int8"]

    def est(precision, split):
        return estimate(Workload("lenet", macs=CONV + FC, params=11_000, activation_elems=3_000,
                                 precision=precision, ops=10, macs_by_precision=split), pi)

    fp32 = est("fp32", macs_by_precision(files["fp32"]))
    dyn = est("int8", macs_by_precision(files["dyn"]))
    static = est("int8", macs_by_precision(files["static"]))
    label_only = est("int8", None)  # what the label alone used to claim
    # the convs (90 % of the MACs) run at the fp32 rate: compute within 10 % of fp32's
    assert dyn.parts_ms["compute"] >= 0.9 * fp32.parts_ms["compute"]
    assert dyn.parts_ms["compute"] > 1.5 * static.parts_ms["compute"]
    assert static.parts_ms["compute"] < 0.75 * fp32.parts_ms["compute"]
    assert static.parts_ms["compute"] == pytest.approx(label_only.parts_ms["compute"])
    assert not dyn.accelerated and static.accelerated
    assert dyn.dtype_split["fp32"] == pytest.approx(CONV / (CONV + FC))
    assert any("run below fp32" in n for n in dyn.notes)


def test_tflite_split_from_each_ops_tensors():
    """Three tiny files (Conv2d 2->4 3x3 on 4x4, then Linear 64->3) built once by
    litert-torch: FP32, full-int8 (PT2E static) and dynamic-range (int8 weights under float
    inputs, LiteRT's hybrid kernels)."""
    pytest.importorskip("ai_edge_litert")
    from pathlib import Path

    from edgeshrink.measure.op_precision import tflite_op_macs

    data = Path(__file__).parent / "data"
    conv, fc = 4 * 4 * 4 * 2 * 9, 64 * 3
    assert macs_by_precision(data / "tiny_conv_fc.tflite") == {"fp32": conv + fc}
    assert macs_by_precision(data / "tiny_conv_fc_int8.tflite") == {"int8": conv + fc}
    ops = tflite_op_macs(data / "tiny_conv_fc_dyn.tflite")
    assert [(n.split("#")[0], p, m) for n, p, m in ops] == [("CONV_2D", "int8", conv),
                                                           ("FULLY_CONNECTED", "int8", fc)]
    assert macs_by_precision(data / "missing.tflite") is None


def test_pte_keeps_its_label_and_names_what_runs_outside_the_delegate():
    """The same tiny model lowered by ExecuTorch with and without the XNNPACK partitioner."""
    pytest.importorskip("executorch")
    from pathlib import Path

    from edgeshrink.measure.op_precision import SPLIT_FROM_FILE, SPLIT_FROM_LABEL, precision_notes

    data = Path(__file__).parent / "data"
    xnn = precision_notes(data / "tiny_conv_fc_xnnpack.pte")
    assert "macs_by_precision" not in xnn  # the delegate's contents are not read
    assert xnn["macs_by_precision_from"].startswith(SPLIT_FROM_LABEL)
    assert xnn["macs_by_precision_from"].endswith("every MAC-bearing op runs in XnnpackBackend")
    portable = precision_notes(data / "tiny_conv_fc_portable.pte")["macs_by_precision_from"]
    assert portable.endswith("portable FP32 kernels: aten::addmm, aten::convolution")
    tfl = precision_notes(data / "tiny_conv_fc.tflite")
    assert tfl == {"macs_by_precision": {"fp32": 1344}, "macs_by_precision_from": SPLIT_FROM_FILE}
