"""TensorRT target: the QDQ file trtexec consumes, checked symmetric, and never timed here."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeshrink.targets import TargetError, get_target
from edgeshrink.transforms import TransformContext, apply_recipe


@pytest.fixture(scope="module")
def trt_art(digits_task, tmp_path_factory):
    from edgeshrink.targets.configs import TensorRTQDQConfig

    ctx = TransformContext(task=digits_task, workdir=tmp_path_factory.mktemp("trt"), name="trt")
    return apply_recipe([TensorRTQDQConfig(calibrator="minmax")], ctx)


def test_qdq_file_is_symmetric_int8_with_the_trtexec_command(trt_art):
    model = onnx.load(str(trt_art.path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(convs) == 4 and len(quant) >= 2 * len(convs)  # input and weight of each
    for n in quant:  # symmetric int8 activations and weights: zero point 0, type int8
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    weight_q = [n for n in quant if n.input[0] in inits and inits[n.input[0]].ndim == 4]
    assert weight_q and all(inits[n.input[1]].size > 1 for n in weight_q)  # per-channel
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    assert trt_art.runtime == "tensorrt" and trt_art.precision == "int8"
    assert trt_art.notes["trtexec"].splitlines()[0] == (
        "trtexec --onnx=trt.onnx --int8 --fp16 --saveEngine=trt.engine --skipInference")
    assert "no tensorrt engine was built or timed" in trt_art.notes["not_timed_here"].lower()
    # Conv+ReLU, MaxPool, Conv+ReLU, MaxPool, Flatten, Gemm+ReLU, Gemm: Q/DQ and ReLU fused
    assert trt_art.notes["onnx_nodes"] == 7


def test_study_records_an_estimate_and_no_memory_for_tensorrt(digits_task, tmp_path):
    from edgeshrink.results import load_run
    from edgeshrink.study.plan import CandidateSpec
    from edgeshrink.study.runner import run_study
    from edgeshrink.targets.configs import TensorRTQDQConfig

    run_study(digits_task, [CandidateSpec("trt", (TensorRTQDQConfig(calibrator="minmax"),))],
              tmp_path, threads=(1,), budget_s=0.05)
    run = load_run(tmp_path)
    trt, base = run.get("trt"), run.baseline
    assert trt.runtime == "tensorrt" and trt.peak_memory_mb is None
    assert trt.latency_ms["source"] == "estimate"
    assert trt.latency_ms["estimated_on"] == "jetson-orin-nano"
    assert base.latency_ms["source"] == "measured" and base.latency_ms["p50"] > 0
    assert trt.notes["macs_by_precision"] == {"int8": 91_776}
    assert abs(trt.metric["value"] - base.metric["value"]) <= 2.0  # ORT on the QDQ file


def test_accuracy_proxy_runs_in_onnxruntime_and_latency_is_an_estimate(trt_art, digits_task):
    target = get_target("trt")
    assert target.measured_here is False
    out = target.outputs(trt_art, digits_task.eval)
    acc = 100 * float(np.mean(out.argmax(1) == digits_task.eval.targets))
    assert acc >= 90.0  # FP32 LeNet-5 on digits: ~98 %
    inputs = tuple(t.numpy() for t in digits_task.example_inputs())
    figs = target.figures(trt_art, inputs, (1, 2))
    import hashlib
    import zlib

    blob = trt_art.path.read_bytes()  # the base's file figures: the one .onnx that ships
    assert (figs["size"], figs["compressed"], figs["sha256"]) == (
        len(blob), len(zlib.compress(blob, 9)), hashlib.sha256(blob).hexdigest())
    assert target.missing() is None  # onnxruntime and onnx-ir are installed here
    assert figs["latency_source"] == "estimate" and figs["peak_mb"] is None
    assert {s["count"] for s in figs["by_threads"].values()} == {0}  # nothing was timed
    assert figs["by_threads"]["1"]["p50"] > 0
    assert "trtexec --onnx=trt.onnx" in target.loading_code(trt_art, file_name="trt.onnx")


def test_asymmetric_uint8_file_is_refused(digits_task, tmp_path):
    from edgeshrink.quant.ort import StaticInt8Config
    from edgeshrink.targets.tensorrt import check_symmetric_qdq

    ctx = TransformContext(task=digits_task, workdir=tmp_path, name="u8")
    art = apply_recipe([StaticInt8Config()], ctx)  # ORT's U8S8: uint8 activations
    with pytest.raises(TargetError, match="zero point of 0"):
        check_symmetric_qdq(art.path)
