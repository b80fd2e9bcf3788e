"""QAT 8/8 QDQ file vs calibrated static INT8 vs FP32 in ONNX Runtime: does the QAT file
run as INT8? Counts the nodes of ORT's optimised graph (ORT_ENABLE_ALL, the graph ORT
runs) and times the three files side by side (A B C C B A, medians of p50 ratios).

ORT fuses DQ(x), DQ(w) -> Conv -> Q(y) into QLinearConv only when a Q follows the layer;
a Conv left in float runs on dequantized values and is no faster than FP32.

Run alone: ``.venv/bin/python benchmarks/run.py --only qat-qdq``.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

TASKS = ("lenet5-digits", "lenet5-mnist", "resnet20-mnist")


def optimized_ops(path: Path, work: Path) -> collections.Counter:
    """Op types of the graph ORT runs for ``path`` (ORT_ENABLE_ALL, CPU)."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # the "optimised for this host" warning
    so.optimized_model_filepath = str(work / f"{path.stem}.opt.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def _files(name: str, work: Path) -> dict[str, Path]:
    from edgeshrink.export import export_onnx
    from edgeshrink.quant.ort import StaticInt8Config
    from edgeshrink.quant.qat import QatConfig
    from edgeshrink.task import load_task
    from edgeshrink.transforms import TransformContext, apply_recipe

    task = load_task(f"zoo:{name}")
    out = {"FP32": export_onnx(task.model.eval(), task.example_inputs(), work / f"{name}-fp32.onnx",
                               input_names=tuple(task.input_names))}
    for label, cfg in (("static INT8", StaticInt8Config()), ("QAT INT8", QatConfig(bits=8, epochs=1))):
        ctx = TransformContext(task=task, workdir=work, name=f"{name}-{label.split()[0].lower()}",
                               teacher=task.model)
        out[label] = Path(apply_recipe([cfg], ctx).path)
    return out


def run(ctx) -> str:
    from edgeshrink.zoo import available

    rows, work = [], Path(ctx.work if ctx else tempfile.mkdtemp())
    for name in TASKS:
        if name not in available():
            continue
        files = _files(name, work)
        fns = {k: ctx.ort_callable(p) for k, p in files.items()}
        order = dict(reversed(list(fns.items())))  # A B C then C B A
        res = ctx.ratio_medians({**fns}, "FP32", repeats=3, runs=100)
        res2 = ctx.ratio_medians(order, "FP32", repeats=3, runs=100)
        for label, path in files.items():
            ops = optimized_ops(path, work)
            conv = {k: v for k, v in ops.items() if "Conv" in k or "Gemm" in k or "MatMul" in k}
            ratio = (res["ratio"][label] + res2["ratio"][label]) / 2
            rows.append([name, label, sum(ops.values()), ", ".join(f"{k} {v}" for k, v in
                         sorted(conv.items())), f"{ratio:.3f}",
                         f"{res['p50_ms'][label]:.4f}"])
        ctx.log(f"{name}: done")
    return "\n".join([
        "### QAT 8/8 QDQ vs static INT8 vs FP32 in ONNX Runtime (1 thread)",
        "",
        "Nodes: the graph ORT runs (ORT_ENABLE_ALL). Latency: p50 over FP32's p50, timed side by",
        "side (A B C then C B A, 3 repeats each, 100 runs), mean of the two orders' medians.",
        "",
        ctx.table(["task", "file", "nodes after ORT opt", "conv/matmul ops", "p50 / FP32",
                   "p50 ms"], rows),
    ])
