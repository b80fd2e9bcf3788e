"""Issue 14: full-integer LiteRT (.tflite) files, measured in LiteRT's interpreter.

(1) Every zoo CNN task (LeNet-5 digits/MNIST, LeNet-300-100, ResNet-20, O-Net): the task
    metric of the FP32 model in PyTorch, of the FP32 .tflite and of our full-integer .tflite
    (int8 activations, per-channel int8 weights), each run in ``ai_edge_litert``'s
    interpreter (XNNPACK); the bar is a drop of at most 0.5 point.
(2) MobileNetV2 (ImageNet weights, zoo:mobilenetv2-imagenet: 400 crops, targets = FP32
    logits): top-1/top-5 agreement and mean KL to FP32 of our INT8 .tflite (each calibrator,
    with and without cross-layer equalization) against litert-torch's own default PT2E
    quantization (``get_symmetric_quantization_config(is_per_channel=True)``: its
    HistogramObserver) calibrated on the same samples, all in one run.

Run alone: ``.venv/bin/python benchmarks/run.py --only litert`` (``--quick``: part 1 only).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

CNN_TASKS = ("lenet5-digits", "lenet5-mnist", "lenet300-mnist", "resnet20-mnist", "onet-faces")
MNV2_ROWS = (  # (label, calibrator, CLE first)
    ("ours: min-max", "minmax", False),
    ("ours: percentile", "percentile", False),
    ("ours: mse", "mse", False),
    ("ours: percentile + CLE", "percentile", True),
)


def _ctx(ctx):
    if ctx is not None:
        return ctx
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Ctx  # the driver's helpers, when this file runs on its own

    return Ctx(work=Path(tempfile.mkdtemp(prefix="bench-litert-")))


def _build(task, recipe, work: Path, name: str):
    from edgeshrink.transforms import TransformContext, apply_recipe

    t0 = time.perf_counter()
    art = apply_recipe(list(recipe), TransformContext(task=task, workdir=work, name=name))
    return art, time.perf_counter() - t0


def _metric(task, art) -> dict:
    from edgeshrink.targets import target_for

    return task.metric.all(target_for(art).outputs(art, task.eval), task.eval.targets)


def _torch_metric(task) -> float:
    import numpy as np
    import torch

    def first(o):
        return (o[0] if isinstance(o, tuple | list) else o).numpy()

    with torch.no_grad():
        out = np.concatenate([first(task.model(*xs)) for xs, _ in task.eval.batches(256)])
    return task.metric(out, task.eval.targets)


def cnn_rows(work: Path, tasks=CNN_TASKS, log=print) -> list[dict]:
    """Per task: FP32 (PyTorch), FP32 .tflite and full-integer .tflite metric, sizes."""
    from edgeshrink.targets.configs import LiteRTConfig
    from edgeshrink.targets.tflite_file import float_tensors
    from edgeshrink.task import load_task

    rows = []
    for name in tasks:
        log(f"litert: {name}")
        task = load_task(f"zoo:{name}")
        fp32, _ = _build(task, [LiteRTConfig(precision="fp32")], work, f"{name}-fp32")
        int8, secs = _build(task, [LiteRTConfig(precision="int8", calibration_samples=1024)],
                            work, f"{name}-int8")
        micro, _ = _build(task, [LiteRTConfig(precision="int8", io="int8", micro=True,
                                              calibration_samples=1024)], work, f"{name}-micro")
        m32, m8, mm = _metric(task, fp32), _metric(task, int8), _metric(task, micro)
        key = task.metric.name
        rows.append({"task": name, "metric": key, "torch": _torch_metric(task),
                     "fp32": m32[key], "int8": m8[key], "drop": task.metric.drop(m32[key], m8[key]),
                     "fp32_kb": fp32.path.stat().st_size / 1024,
                     "int8_kb": int8.path.stat().st_size / 1024, "build_s": secs,
                     "micro": mm[key], "micro_drop": task.metric.drop(m32[key], mm[key]),
                     "arena_kb": micro.notes["arena_bytes"] / 1024,
                     "micro_float": len(float_tensors(micro.path.read_bytes())),
                     "samples": int8.notes["calibration_samples"]})
        log(f"litert: {rows[-1]}")
    return rows


def _peer_default(task, work: Path):
    """litert-torch's documented PT2E flow with its default config, on our calibration set."""
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeshrink.targets.litert import _quiet
    from edgeshrink.transforms import Artifact

    t0 = time.perf_counter()
    x = task.example_inputs()
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    batch = torch.export.Dim("batch", min=1, max=1024)
    with _quiet(), torch.no_grad():
        exported = torch.export.export(task.model.eval(), task.example_inputs(2),
                                       dynamic_shapes=({0: batch},))
        pm = prepare_pt2e(exported.module(), q)
        for xs in task.calibration.numpy_batches(32):
            pm(*(torch.from_numpy(a) for a in xs))
        cm = convert_pt2e(pm, fold_quantize=False)
        path = work / "mnv2-litert-torch-default.tflite"
        litert_torch.convert(cm, x, quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
    art = Artifact(path=path, model=task.model, precision="int8", runtime="litert")
    return art, time.perf_counter() - t0


def mnv2_rows(work: Path, log=print) -> list[list[str]]:
    from edgeshrink.quant import CrossLayerEqualizationConfig
    from edgeshrink.targets.configs import LiteRTConfig
    from edgeshrink.task import load_task

    task = load_task("zoo:mobilenetv2-imagenet")
    n = len(task.calibration)
    rows = []

    def row(label, art, secs):
        m = _metric(task, art)
        rows.append([label, f"{m['top1_agreement']:.2f}", f"{m['top5_agreement']:.2f}",
                     f"{m['mean_kl']:.4f}", f"{art.path.stat().st_size / 1024:.0f}",
                     f"{secs:.0f}"])
        log(f"litert: {rows[-1]}")

    log("litert: mobilenetv2 fp32")
    row("FP32 .tflite", *_build(task, [LiteRTConfig(precision="fp32")], work, "mnv2-fp32"))
    log("litert: mobilenetv2 litert-torch default")
    row("peer: litert-torch default PT2E (HistogramObserver)", *_peer_default(task, work))
    for label, calibrator, cle in MNV2_ROWS:
        log(f"litert: mobilenetv2 {label}")
        recipe = ([CrossLayerEqualizationConfig()] if cle else []) + [
            LiteRTConfig(precision="int8", calibrator=calibrator, calibration_samples=n)]
        row(label, *_build(task, recipe, work, f"mnv2-{calibrator}-{cle}"))
    return rows, n


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = set(next(ln for ln in text.splitlines() if ln.startswith("flags"))
                    .split(":")[1].split())
    except (OSError, StopIteration):
        return "unknown"
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI", "avx_vnni": "VNNI",
             "amx_int8": "AMX"}
    return ", ".join(sorted({v for k, v in names.items() if k in flags})) or "none of AVX2+"


def run(ctx=None) -> str:
    import platform

    import torch

    ctx = _ctx(ctx)
    torch.set_num_threads(2)
    log = getattr(ctx, "log", print)
    rows = cnn_rows(ctx.work, log=log)
    out = [
        f"CPU: {platform.machine()}, flags {_cpu_flags()}; 2 torch threads; LiteRT "
        "interpreter with 2 threads (XNNPACK), the file converted at batch 1 and looped.",
        "",
        "### Zoo CNN tasks: full-integer .tflite in LiteRT's interpreter",
        "",
        "`LiteRTConfig(precision=\"int8\", calibration_samples=1024)` (min-max calibrator, "
        "int8 activations, per-channel int8 weights; float I/O, the output layer computing "
        "float logits from int8 weights) and the microcontroller build `io=\"int8\", "
        "micro=True` (every layer integer, int8 I/O, TFLM op check passed), run by "
        "`ai_edge_litert` (XNNPACK) on each task's eval set; bar: drop vs the FP32 .tflite "
        "<= 0.5 pt.",
        "",
        "| task | metric | PyTorch FP32 | FP32 .tflite | INT8 .tflite | drop (pt) | "
        "INT8 int8-I/O (micro) | drop (pt) | bar | FP32 KB | INT8 KB | arena KB (est.) | "
        "float tensors (micro) | calib samples | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(f"| {r['task']} | {r['metric']} | {r['torch']:.2f} | {r['fp32']:.2f} | "
                   f"{r['int8']:.2f} | {r['drop']:+.2f} | {r['micro']:.2f} | "
                   f"{r['micro_drop']:+.2f} | "
                   f"{'ok' if max(r['drop'], r['micro_drop']) <= 0.5 else 'MISS'}"
                   f" | {r['fp32_kb']:.1f} | {r['int8_kb']:.1f} | {r['arena_kb']:.1f} | "
                   f"{r['micro_float']} | {r['samples']} | "
                   f"{r['build_s']:.0f} |")
    if not getattr(ctx, "quick", False):
        mrows, n = mnv2_rows(ctx.work, log=log)
        out += [
            "", "### MobileNetV2 INT8 .tflite: ours vs litert-torch's default quantization",
            "", f"Same {n} calibration crops for every row; metrics against FP32 PyTorch "
            "logits on the 400 eval crops, each file run in LiteRT's interpreter.", "",
            "| variant | top1_agreement | top5_agreement | mean_kl | KB | build s |",
            "|---|---|---|---|---|---|",
            *(f"| {' | '.join(r)} |" for r in mrows),
        ]
    return "\n".join(out)


if __name__ == "__main__":
    print(run())
