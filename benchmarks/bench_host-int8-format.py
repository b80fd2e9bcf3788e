"""The host is a device too: INT8 static built with 8-bit and with 7-bit weights
(``reduce_range``), both run in ONNX Runtime on this machine, against FP32.

On x86 without VNNI, ORT's U8S8 kernels sum uint8 x int8 pairs in a saturating int16
(VPMADDUBSW); ``edgeshrink.targets.onnxruntime.int8_format`` then chooses 7-bit weights.
This table shows what each format costs where nothing saturates (this host's flags are in
the header): the price of the remedy, measured; the chooser's pick for these flags is
printed above the table.

Run alone: ``.venv/bin/python benchmarks/run.py --only host-int8-format``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

# (zoo task, calibrator the study plans use for it)
TASKS = (("lenet5-digits", "minmax"), ("resnet20-mnist", "minmax"),
         ("onet-faces", "percentile"), ("mobilenetv2-imagenet", "percentile"))


def _max_int8(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max())
               for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8)


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
    for rr in ("off", "on"):
        cfg = StaticInt8Config(calibrator=calibrator, reduce_range=rr)
        art = apply_recipe([cfg], TransformContext(task=task, workdir=work, name=f"{name}-{rr}"))
        out = target_for(art).outputs(art, task.eval)
        agree = (f"{100 * np.mean(out.argmax(1) == ref.argmax(1)):.2f}"
                 if ref.ndim == 2 and ref.shape[1] > 1 else "-")
        value = task.metric(out, task.eval.targets)
        rows.append([name, calibrator, "7-bit (on)" if rr == "on" else "8-bit (off)",
                     f"{fp32:.4g}", f"{value:.4g}", agree,
                     f"{float(np.abs(out - ref).max()):.3g}", _max_int8(art.path)])
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
        "top-1 agreement with FP32 %", "max abs diff vs FP32", "max abs int8 weight"]]]
    table.append("|" + "---|" * 8)
    table += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join([
        "### INT8 static (QDQ, uint8 activations, per-channel int8 weights), 8-bit vs 7-bit",
        "",
        f"Chooser on this host (`int8_format()`): reduce_range={fmt['reduce_range']}; "
        f"{fmt['reason']} Flags: {' '.join(fmt['cpu_flags']) or 'none'}.",
        "Both files of each task run in ONNX Runtime here; FP32 is the PyTorch model.",
        "",
        *table,
    ])


if __name__ == "__main__":
    print(run())
