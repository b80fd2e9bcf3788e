"""The host is a device too: INT8 static built with 8-bit and with 7-bit weights
(``reduce_range``), both run in ONNX Runtime on this machine, against FP32.

On x86 without VNNI, ORT's U8S8 kernels sum uint8 x int8 pairs in a saturating int16
(VPMADDUBSW); ``edgeshrink.targets.onnxruntime.int8_format`` then chooses 7-bit weights.
This table shows what each format costs where nothing saturates (this host's flags are in
the header): the price of the remedy, measured; the chooser's pick for these flags is
printed above the table. A third row per task is U8U8 (uint8 weights, 8 bits, asymmetric
per channel), the other format ORT documents as free of saturation on such CPUs, built
by the same pipeline with ORT's weight type switched (not a recipe option).

Run alone: ``.venv/bin/python benchmarks/run.py --only host-int8-format``.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np

# (zoo task, calibrator the study plans use for it)
TASKS = (("lenet5-digits", "minmax"), ("resnet20-mnist", "minmax"),
         ("onet-faces", "percentile"), ("mobilenetv2-imagenet", "percentile"))


@contextlib.contextmanager
def _uint8_weights(on: bool):
    """ORT's quantize_static called with uint8 weights (U8U8) while ``on``."""
    import onnxruntime.quantization as oq

    real = oq.quantize_static
    if on:
        oq.quantize_static = lambda *a, **k: real(*a, **{**k, "weight_type": oq.QuantType.QUInt8})
    try:
        yield
    finally:
        oq.quantize_static = real


def _max_weight(path: Path) -> str:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    ints = [numpy_helper.to_array(t).astype(np.int32) for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.INT8 and t.dims]
    if ints:
        return str(max(int(np.abs(a).max()) for a in ints))
    u8 = [numpy_helper.to_array(t) for t in model.graph.initializer
          if t.data_type == onnx.TensorProto.UINT8 and len(t.dims) > 1]
    return f"uint8 {min(int(a.min()) for a in u8)}..{max(int(a.max()) for a in u8)}"


def _rows(name: str, calibrator: str, work: Path) -> list[list]:
    from edgeshrink.measure.model_stats import torch_outputs
    from edgeshrink.quant.ort import StaticInt8Config
    from edgeshrink.targets import target_for
    from edgeshrink.task import load_task
    from edgeshrink.transforms import TransformContext, apply_recipe

    task = load_task(f"zoo:{name}")
    ref = torch_outputs(task.model, task.eval)
    fp32 = task.metric(ref, task.eval.targets)
    rows = []
    for rr, label in (("off", "8-bit (off)"), ("on", "7-bit (on)"), ("u8u8", "U8U8 uint8")):
        cfg = StaticInt8Config(calibrator=calibrator, reduce_range="off" if rr == "u8u8" else rr)
        with _uint8_weights(rr == "u8u8"):
            art = apply_recipe([cfg], TransformContext(task=task, workdir=work,
                                                       name=f"{name}-{rr}"))
        out = target_for(art).outputs(art, task.eval)
        agree = (f"{100 * np.mean(out.argmax(1) == ref.argmax(1)):.2f}"
                 if ref.ndim == 2 and ref.shape[1] > 1 else "-")
        value = task.metric(out, task.eval.targets)
        rows.append([name, calibrator, label, f"{fp32:.4g}", f"{value:.4g}", agree,
                     f"{float(np.abs(out - ref).max()):.3g}", _max_weight(art.path)])
    return rows


def run(ctx=None) -> str:
    from edgeshrink.targets.onnxruntime import int8_format
    from edgeshrink.zoo import available

    fmt = int8_format()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, calibrator in TASKS:
            if name not in available():
                continue
            try:
                rows += _rows(name, calibrator, Path(tmp))
            except Exception as exc:  # a task whose data is absent here: say so, go on
                rows.append([name, calibrator, f"not measured: {type(exc).__name__}: {exc}"[:90],
                             "", "", "", "", ""])
    table = ["| " + " | ".join(h) + " |" for h in [[
        "task", "calibrator", "weights", "FP32 metric", "INT8 metric",
        "top-1 agreement with FP32 %", "max abs diff vs FP32", "max abs weight"]]]
    table.append("|" + "---|" * 8)
    table += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join([
        "### INT8 static (QDQ, uint8 activations, per-channel int8 weights), 8-bit vs 7-bit",
        "",
        f"Chooser on this host (`int8_format()`): reduce_range={fmt['reduce_range']}; "
        f"{fmt['reason']} Flags: {' '.join(fmt['cpu_flags']) or 'none'}.",
        "Every file runs in ONNX Runtime here; FP32 is the PyTorch model. 8-bit: int8 weights",
        "(U8S8, the VNNI format); 7-bit: `reduce_range=on`, what the chooser picks on x86",
        "without VNNI; U8U8: uint8 weights (asymmetric per channel), ORT's other format free of",
        "saturation there, built with ORT's weight type switched (no recipe option yet).",
        "",
        *table,
    ])


if __name__ == "__main__":
    print(run())
