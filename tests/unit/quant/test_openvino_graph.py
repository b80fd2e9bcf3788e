"""The QDQ graph OpenVINO reads (quantizers after max-pools move above them, exactly) and
the check that its INT8 build answers a batch as it answers each sample."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError
from edgeshrink.quant import StaticInt8Config, quantize
from edgeshrink.quant.openvino import check_batches, hoist_quantizers


def _reference_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """ONNX semantics, no fused INT8 kernels: float ops between exact Q/DQ."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_hoisting_the_quantizer_above_maxpool_is_exact(tiny, tmp_path):
    # inputs_only leaves Conv->ReLU float, so ORT quantizes the MaxPool's output instead
    cfg = StaticInt8Config(activations="mixed", inputs_only=True, calibration_samples=64)
    art = quantize(tiny.model, cfg, tiny.calibration, workdir=tmp_path)
    before = onnx.load(str(art.path))
    after = onnx.load(str(art.path))
    assert hoist_quantizers(after) == 1
    onnx.checker.check_model(after)
    producer = {o: n for n in after.graph.node for o in n.output}
    pool = next(n for n in after.graph.node if n.op_type == "MaxPool")
    assert producer[pool.input[0]].op_type == "DequantizeLinear"  # the pool reads INT8 values
    readers = [n for n in after.graph.node if pool.output[0] in n.input]
    assert all(n.op_type != "QuantizeLinear" for n in readers)
    x = tiny.eval.inputs[0]
    want, got = _reference_run(before, x), _reference_run(after, x)
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert hoist_quantizers(after) == 0  # nothing left to move


def _stage(cin: int, cout: int) -> list[nn.Module]:
    """O-Net's shape: Conv -> PReLU (goes negative) -> MaxPool."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.PReLU(cout), nn.MaxPool2d(2, ceil_mode=True)]


def test_every_pool_of_a_deeper_net_reads_int8_and_its_outputs_stay_the_same(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(*_stage(3, 8), *_stage(8, 16), *_stage(16, 16), nn.Flatten(),
                          nn.Linear(16 * 2 * 2, 5)).eval()  # fmt: skip
    x = np.random.default_rng(0).standard_normal((64, 3, 13, 13)).astype(np.float32)
    cfg = StaticInt8Config(activations="mixed", inputs_only=True, calibration_samples=64)
    art = quantize(model, cfg, Dataset((x,), np.zeros(64)), workdir=tmp_path)
    before, after = onnx.load(str(art.path)), onnx.load(str(art.path))
    assert hoist_quantizers(after) == 3
    onnx.checker.check_model(after)
    producer = {o: n for n in after.graph.node for o in n.output}
    pools = [n for n in after.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 3 and all(producer[p.input[0]].op_type == "DequantizeLinear" for p in pools)
    np.testing.assert_allclose(_reference_run(after, x), _reference_run(before, x), rtol=0, atol=1e-5)


def test_a_pool_already_reading_int8_is_left_alone(tiny, tmp_path):
    art = quantize(tiny.model, StaticInt8Config(calibration_samples=64), tiny.calibration,
                   workdir=tmp_path)  # fmt: skip
    model = onnx.load(str(art.path))
    producer = {o: n for n in model.graph.node for o in n.output}
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    assert producer[pool.input[0]].op_type == "DequantizeLinear"
    assert hoist_quantizers(model) == 0


def test_a_file_that_answers_differently_in_a_batch_is_refused():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    check_batches(lambda a: a * 2.0, (x,))  # the same outputs together and alone: accepted

    def nan_after_the_first(a):  # what OpenVINO's INT8 MiniLM did
        out = a * 2.0
        out[1:] = np.nan
        return out

    with pytest.raises(UserError, match="batch of 2"):
        check_batches(nan_after_the_first, (x,))
    check_batches(nan_after_the_first, (x[:1],))  # one sample: nothing to compare

    def one_at_a_time(a):  # a model exported with its batch fixed at 1
        if len(a) != 1:
            raise RuntimeError("shape mismatch")
        return a

    check_batches(one_at_a_time, (x,))
