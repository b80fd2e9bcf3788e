"""QAT: LSQ fine-tuning, QDQ export with the learned scales, ORT ~ fake-quant torch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from _tiny import accuracy, ctx_for

from edgeshrink.errors import UserError
from edgeshrink.measure.artifact import onnx_outputs
from edgeshrink.quant.fake import QuantWrap, fold_batchnorm
from edgeshrink.quant.qat import QatConfig
from edgeshrink.transforms import apply_recipe


def test_errors():
    with pytest.raises(UserError, match="bits"):
        QatConfig(bits=17)
    with pytest.raises(UserError, match="act_bits"):
        QatConfig(act_bits=1)


def test_fold_batchnorm_same_outputs(tiny):
    folded = fold_batchnorm(tiny.model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.from_numpy(tiny.eval.inputs[0][:16])
    with torch.no_grad():
        assert torch.allclose(folded(x), tiny.model(x), atol=1e-5)


def test_qat8_exports_qdq_with_learned_scales(tiny, tmp_path):
    art = apply_recipe([QatConfig(bits=8, epochs=1, lr=1e-3)], ctx_for(tiny, tmp_path))
    assert art.runtime == "onnxruntime" and art.precision == "int8"
    graph = onnx.load(art.path).graph
    ops = [n.op_type for n in graph.node]
    # each layer's input Q/DQ; Q/DQ after the conv's Relu and MaxPool (the next layer's
    # scale); weights' DQ; the last layer's int32 bias DQ
    assert ops.count("QuantizeLinear") == 5 and ops.count("DequantizeLinear") == 9
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    assert {a.dtype for a in inits.values()} >= {np.dtype(np.int8), np.dtype(np.uint8)}
    # the scales in the file are the learned LSQ steps
    wraps = [m for m in art.model.modules() if isinstance(m, QuantWrap)]
    learned = sorted(round(float(w.act_q.step.detach().abs()), 7) for w in wraps)
    in_file = sorted(round(float(v), 7) for v in inits.values()
                     if v.dtype == np.float32 and v.ndim == 0)
    assert all(any(abs(a - b) < 1e-7 for b in in_file) for a in learned)
    # ORT runs what was trained: same class on >= 99 % of samples
    got = onnx_outputs(art.path, tiny.eval)
    with torch.no_grad():
        ref = art.model(torch.from_numpy(tiny.eval.inputs[0])).numpy()
    assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.99
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    assert accuracy(tiny, art) >= 85


def test_qat4_is_simulated_and_packed(tiny, tmp_path):
    art = apply_recipe([QatConfig(bits=4, act_bits=0, epochs=1, lr=1e-3)],
                       ctx_for(tiny, tmp_path))
    assert art.runtime == "simulated" and art.precision == "int4"
    w = art.model.get_submodule("classifier.1").weight
    assert all(len(torch.unique(row)) <= 16 for row in w)
    dense = sum(p.numel() for p in art.model.state_dict().values()) * 4
    assert art.size_encoded_bytes < 0.3 * dense


def test_qat8_runs_as_int8_in_ort(tmp_path):
    """Every Conv/Gemm of LeNet-5 fuses into an integer kernel in ORT's optimised graph
    (before the Q/DQ after each layer, a Conv ran in float on dequantized values)."""
    import onnxruntime as ort

    from edgeshrink.task import load_task
    from edgeshrink.transforms import TransformContext

    task = load_task("zoo:lenet5-digits")
    ctx = TransformContext(task=task, workdir=tmp_path, name="q", teacher=task.model)
    art = apply_recipe([QatConfig(bits=8, epochs=0)], ctx)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(art.path), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    assert ops.count("QLinearConv") == 2 and ops.count("QGemm") == 2
    assert not {"Conv", "FusedConv", "Gemm", "MatMul", "DequantizeLinear"} & set(ops)
    assert ops.count("QuantizeLinear") == 1  # the input's; MaxPool/Flatten run on uint8
    got = onnx_outputs(art.path, task.eval)
    with torch.no_grad():
        ref = art.model(torch.from_numpy(task.eval.inputs[0])).numpy()
    assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.99
    assert np.abs(got - ref).max() < 0.02 * np.abs(ref).max()
