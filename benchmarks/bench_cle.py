"""Cross-layer equalization before per-tensor INT8: ImageNet MobileNetV2, with vs without.

``zoo:mobilenetv2-imagenet`` (torchvision's weights; 400 crops of 16 bundled photos, no
ImageNet labels): top-1 / top-5 agreement and mean KL of the INT8 file (ONNX Runtime, QDQ,
U8S8) against FP32. Per-tensor weights are where CLE matters (Nagel et al. 2019: per-tensor
MobileNetV2 INT8 fell to ~0 % top-1 without it); per-channel rows are the reference.
The FP32 check: the equalized model's PyTorch outputs against the original's.

Run alone: ``.venv/bin/python benchmarks/run.py --only cle``.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

ROWS = (  # (per_channel, calibrator)
    (False, "minmax"),
    (False, "percentile"),
    (True, "minmax"),
)


def _ctx(ctx):
    if ctx is not None:
        return ctx
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Ctx  # the driver's helpers, when this file runs on its own

    return Ctx(work=Path(tempfile.mkdtemp(prefix="bench-cle-")))


def _figures(task, recipe, work: Path, name: str) -> dict:
    from edgeshrink.measure.artifact import onnx_outputs
    from edgeshrink.transforms import TransformContext, apply_recipe

    art = apply_recipe(list(recipe), TransformContext(task=task, workdir=work, name=name))
    return task.metric.all(onnx_outputs(art.path, task.eval), task.eval.targets)


def _fp32_diff(task) -> float:
    import torch

    from edgeshrink.quant.equalize import equalize

    eq = copy.deepcopy(task.model)
    equalize(eq)
    xs = torch.from_numpy(task.eval.inputs[0][:64])
    with torch.no_grad():
        a, b = task.model(xs), eq(xs)
    return float((a - b).abs().max() / a.abs().max())


def run(ctx=None) -> str:
    import torch

    from edgeshrink.quant import CrossLayerEqualizationConfig, StaticInt8Config
    from edgeshrink.task import load_task

    ctx = _ctx(ctx)
    torch.set_num_threads(1)
    task = load_task("zoo:mobilenetv2-imagenet")
    rows = []
    for per_channel, calibrator in ROWS:
        q = StaticInt8Config(calibrator=calibrator, per_channel=per_channel)
        for cle in (False, True):
            ctx.log(f"mobilenetv2: per_channel={per_channel} {calibrator} cle={cle}")
            recipe = ([CrossLayerEqualizationConfig()] if cle else []) + [q]
            tag = f"{'pc' if per_channel else 'pt'}-{calibrator}-{'cle' if cle else 'plain'}"
            f = _figures(task, recipe, ctx.work, tag)
            rows.append(["per-channel" if per_channel else "per-tensor", calibrator,
                         "yes" if cle else "no", f"{f['top1_agreement']:.2f}",
                         f"{f['top5_agreement']:.2f}", f"{f['mean_kl']:.4f}"])
    diff = _fp32_diff(task)
    return "\n".join([
        "### Per-tensor INT8 MobileNetV2 with and without cross-layer equalization",
        "",
        "`[CrossLayerEqualizationConfig(), StaticInt8Config(per_channel=..., calibrator=...)]`",
        "against the same StaticInt8Config alone; ONNX Runtime QDQ (uint8 activations, int8",
        "weights) on 400 crops of 16 photos; agreement with the FP32 model's predictions.",
        f"Equalized FP32 model vs original: max |diff| / max |output| = {diff:.1e} on 64 crops.",
        "",
        ctx.table(["weights", "calibrator", "CLE", "top-1 agreement %", "top-5 agreement %",
                   "mean KL (nats)"], rows),
    ])  # fmt: skip


if __name__ == "__main__":
    print(run(None))
