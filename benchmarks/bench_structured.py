"""Structured pruning: half the MACs gone, and what that buys in ONNX Runtime.

1. ResNet-18 (torchvision layout, random weights) and ImageNet MobileNetV2 at 224x224:
   channel pruning to a 50 % MAC reduction (L1, uniform, channels rounded to 16, or to 8
   where 16 cannot reach the target), exported to
   ONNX, ORT outputs checked against PyTorch (atol 1e-4), latency pruned / unpruned at
   batch 1, 2 threads, interleaved, median over repeats. Bar: <= 0.65x.
2. ``zoo:resnet20-mnist``: the same 50 % MAC reduction, fine-tuned; accuracy through ORT.
   Bar: within 1 point of the unpruned model.
3. Importance criteria (L1, L2, Taylor, Hessian/OBD) on ResNet-20 at that reduction,
   accuracy before and after the same fine-tune.

Run alone: ``.venv/bin/python benchmarks/run.py --only structured``.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

SPEED_BAR = 0.65
# ORT's x86 convolutions work on NCHWc blocks of 16 channels with AVX-512 (8 with AVX2):
# a pruned width that is not a multiple pads up to one. MobileNetV2 at 52 % fewer MACs ran
# 0.566x unpruned with widths rounded to 16 against 0.658x rounded to 8 (same run, quiet).
ROUND_TO = (16, 8)
DROP_BAR = 1.0
THREADS = 2
CRITERIA = ("l1", "l2", "taylor", "hessian")
FT_EPOCHS = 3


def _ctx(ctx):
    if ctx is not None:
        return ctx
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import Ctx  # the driver's helpers, when this file runs on its own

    return Ctx(work=Path(tempfile.mkdtemp(prefix="bench-structured-")))


def _speed_models():
    import torch

    from edgeshrink.zoo.models_resnet import ResNet18

    torch.manual_seed(0)
    yield "ResNet-18 (random weights)", ResNet18().eval()
    try:
        from edgeshrink.zoo.models_mobilenet import pretrained_mobilenet_v2

        yield "MobileNetV2 (ImageNet weights)", pretrained_mobilenet_v2()
    except Exception as exc:  # weights package missing: say so, keep the ResNet-18 row
        yield f"MobileNetV2 unavailable ({exc})", None


def _ort_max_diff(ctx, model, path, xs) -> float:
    import numpy as np
    import torch

    with torch.no_grad():
        expected = model(torch.from_numpy(xs)).numpy()
    got = ctx.ort_session(path, THREADS).run(None, {"input": xs})[0]
    return float(np.max(np.abs(got - expected)))


def _speed_row(ctx, name, model):
    import numpy as np
    import torch

    from edgeshrink.measure.model_stats import count_macs, count_params
    from edgeshrink.prune.structured import StructuredConfig, prune_structured

    example = (torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)),)
    from edgeshrink.errors import UserError

    for round_to in ROUND_TO:  # the coarsest rounding that still reaches the target
        cfg = StructuredConfig(macs_reduction=0.5, importance="l1", round_to=round_to)
        try:
            pruned = prune_structured(copy.deepcopy(model), cfg, example)
            break
        except UserError as exc:
            ctx.log(f"{name}: round_to={round_to}: {exc}")
            error = exc
    else:
        raise error
    xs = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    stats, paths = {}, {}
    for tag, m in (("unpruned", model), ("pruned", pruned)):
        paths[tag] = ctx.export_onnx(m, example, ctx.work / f"{name[:9]}-{tag}.onnx",
                                     dynamic_axes={"input": {0: "b"}, "output": {0: "b"}})
        stats[tag] = (count_macs(m, example)[0], count_params(m), paths[tag].stat().st_size,
                      _ort_max_diff(ctx, m, paths[tag], xs))  # fmt: skip
    feeds = {"input": example[0].numpy()}
    fns = {t: ctx.ort_callable(p, feeds=feeds, threads=THREADS) for t, p in paths.items()}
    timing = ctx.ratio_medians(fns, "unpruned", repeats=7, runs=40, warmup=5)
    (m0, p0, s0, d0), (m1, p1, s1, d1) = stats["unpruned"], stats["pruned"]
    ratio = timing["ratio"]["pruned"]
    lo, hi = timing["spread"]["pruned"]
    return [
        name, str(round_to), f"{1 - m1 / m0:.1%}", f"{p0 / 1e6:.2f} -> {p1 / 1e6:.2f} M",
        f"{s0 / 2**20:.1f} -> {s1 / 2**20:.1f} MiB", f"{max(d0, d1):.1e}",
        f"{timing['p50_ms']['unpruned']:.2f} -> {timing['p50_ms']['pruned']:.2f}",
        f"{ratio:.3f} ({lo:.2f}-{hi:.2f})", "yes" if ratio <= SPEED_BAR and d1 <= 1e-4 else "NO",
        f"{timing['others_cpu_cores']:.2f}",
    ]  # fmt: skip


def _onnx_accuracy(ctx, model, task, tag: str) -> float:
    from edgeshrink.export import export_onnx, ort_session, run_onnx

    path = export_onnx(model, task.example_inputs(), ctx.work / f"r20-{tag}.onnx")
    sess = ort_session(path, THREADS)
    import numpy as np

    out = np.concatenate([run_onnx(sess, xs) for xs in task.eval.numpy_batches(250)])
    return task.metric(out, task.eval.targets)


def _criteria_rows(ctx, task, base_acc):
    from edgeshrink.measure.model_stats import count_macs
    from edgeshrink.prune.structured import StructuredConfig, prune_structured
    from edgeshrink.train import FinetuneConfig, fit

    example = task.example_inputs()
    macs0 = count_macs(task.model, example)[0]
    rows = []
    for crit in CRITERIA:
        ctx.log(f"resnet20-mnist: {crit}")
        cfg = StructuredConfig(macs_reduction=0.5, importance=crit)
        model = prune_structured(copy.deepcopy(task.model), cfg, example, data=task.calibration)
        red = 1 - count_macs(model, example)[0] / macs0
        before = _onnx_accuracy(ctx, model, task, f"{crit}-0")
        fit(model, FinetuneConfig(epochs=FT_EPOCHS), task.train, seed=0)
        after = _onnx_accuracy(ctx, model, task, f"{crit}-ft")
        rows.append([crit, f"{red:.1%}", f"{before:.2f}", f"{after:.2f}",
                     f"{base_acc - after:+.2f}", "yes" if base_acc - after <= DROP_BAR else "NO"])
    return rows


def run(ctx=None) -> str:
    import torch

    from edgeshrink.zoo import load

    ctx = _ctx(ctx)
    # Training and PyTorch references on one thread (two OpenMP threads on a shared 2-core
    # machine spun 10x slower); ONNX Runtime latencies use THREADS intra-op threads.
    torch.set_num_threads(1)
    speed = []
    for name, model in _speed_models():
        if model is None:
            speed.append([name] + ["-"] * 8)
            continue
        ctx.log(f"speed: {name}")
        speed.append(_speed_row(ctx, name, model))
    task = load("resnet20-mnist")
    base = _onnx_accuracy(ctx, task.model, task, "base")
    crit = _criteria_rows(ctx, task, base)
    return "\n".join([
        "### Half the MACs removed at 224x224: ONNX Runtime latency, batch 1, 2 threads",
        "",
        "StructuredConfig(macs_reduction=0.5, importance='l1', scope='uniform', round_to=16, or",
        "8 where 16 cannot reach the target: ORT's AVX-512 convolutions use 16-channel blocks);",
        "latency p50 of each model interleaved with the other (A B B A ...), 40 runs, ratio =",
        f"median over 7 repeats (min-max in brackets). Bar: ratio <= {SPEED_BAR}, ORT == PyTorch",
        "within 1e-4 on 2 random inputs.",
        "",
        ctx.table(["model", "round_to", "MACs removed", "params", "ONNX size", "max |ORT-torch|",
                   "p50 ms", "latency ratio", "bar met", "others' cores"], speed),
        f"### zoo:resnet20-mnist, 50 % of MACs removed, fine-tuned {FT_EPOCHS} epochs (Adam 1e-3)",
        "",
        f"Unpruned accuracy through ONNX Runtime: {base:.2f} % on 1,000 test digits. Bar: drop",
        f"<= {DROP_BAR} point after fine-tuning. Accuracies are of the exported ONNX files.",
        "",
        ctx.table(["importance", "MACs removed", "acc before ft %", "acc after ft %",
                   "drop (points)", "bar met"], crit),
    ])  # fmt: skip


if __name__ == "__main__":
    print(run(None))
