"""ExecuTorch: every zoo CNN task as an XNNPACK-delegated FP32 and INT8 ``.pte``.

Accuracy of both files measured in ExecuTorch's runtime over the task's evaluation set
(the bar: INT8 within 0.5 pt of FP32), file sizes, what XNNPACK took, and p50 latency at
batch 1, 1 thread (FP32 and INT8 timed in alternation).

Run alone: ``.venv/bin/python benchmarks/run.py --only executorch``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

TASKS = ("lenet5-digits", "lenet5-mnist", "lenet300-mnist", "resnet20-mnist", "onet-faces")
BAR_PT = 0.5
CAL_TASK = "resnet20-mnist"
CALIBRATORS = ("minmax", "histogram", "percentile", "entropy", "mse")


def measure(name: str, work: Path, calibrator: str = "minmax") -> dict:
    """Build both files for ``zoo:name`` and score them in ExecuTorch."""
    from edgeshrink.targets.configs import ExecuTorchConfig
    from edgeshrink.targets.executorch import TARGET
    from edgeshrink.task import load_task
    from edgeshrink.transforms import TransformContext, apply_recipe

    task = load_task(f"zoo:{name}")
    row: dict = {"task": name, "calibrator": calibrator}
    for precision in ("fp32", "int8"):
        ctx = TransformContext(task=task, workdir=work, name=f"{name}-{precision}")
        t0 = time.perf_counter()
        art = apply_recipe([ExecuTorchConfig(precision=precision, calibrator=calibrator)], ctx)
        row[f"{precision}_build_s"] = time.perf_counter() - t0
        outputs = TARGET.outputs(art, task.eval)
        row[f"{precision}_metric"] = task.metric(outputs, task.eval.targets)
        row[f"{precision}_size"] = Path(art.path).stat().st_size
        row[f"{precision}_notes"] = art.notes
        row[f"{precision}_run"] = TARGET.load(Path(art.path), threads=1)
        row[f"{precision}_outputs"] = outputs
    row["agreement"] = 100.0 * float(
        (row["fp32_outputs"].argmax(1) == row["int8_outputs"].argmax(1)).mean())
    row["drop"] = task.metric.drop(row["fp32_metric"], row["int8_metric"])
    row["x"] = tuple(a[:1] for a in task.eval.inputs)
    return row


def _delegation(notes: dict) -> str:
    if notes.get("fully_delegated"):
        return f"all ({notes['delegated_ops']} ops)"
    return f"{notes['delegated_ops']} ops; not: {', '.join(notes['undelegated_ops'])}"


def run(ctx) -> str:
    import torch

    from edgeshrink.targets.configs import ExecuTorchConfig
    from edgeshrink.targets.executorch import TARGET
    from edgeshrink.task import load_task
    from edgeshrink.transforms import TransformContext, apply_recipe

    torch.set_num_threads(2)
    rows = []
    for name in TASKS:
        row = measure(name, ctx.work)
        x = row["x"]
        stats = ctx.time_interleaved({"fp32": lambda r=row["fp32_run"], x=x: r(*x),
                                      "int8": lambda r=row["int8_run"], x=x: r(*x)},
                                     warmup=20, runs=50 if ctx.quick else 300)  # fmt: skip
        row["fp32_p50"], row["int8_p50"] = stats["fp32"]["p50"], stats["int8"]["p50"]
        ctx.log(f"{name}: fp32 {row['fp32_metric']:.2f} int8 {row['int8_metric']:.2f}")
        rows.append(row)
    table = ctx.table(
        ["task", "FP32 acc", "INT8 acc", "drop (pt)", "bar", "top-1 agr.", "FP32 KB", "INT8 KB",
         "FP32 p50 ms", "INT8 p50 ms", "INT8: ops inside XNNPACK (incl. q/dq)"],
        [[r["task"], f"{r['fp32_metric']:.2f}", f"{r['int8_metric']:.2f}", f"{r['drop']:+.2f}",
          "ok" if r["drop"] <= BAR_PT else "FAIL", f"{r['agreement']:.2f}",
          f"{r['fp32_size'] / 1024:.1f}", f"{r['int8_size'] / 1024:.1f}",
          f"{r['fp32_p50']:.3f}", f"{r['int8_p50']:.3f}", _delegation(r["int8_notes"])]
         for r in rows])  # fmt: skip
    fp32 = {r["task"]: r["fp32_metric"] for r in rows}
    kept = sorted({r["task"] for r in rows if "kept_out_of_xnnpack" in r["int8_notes"]})
    note = (f"\nKept out of XNNPACK ({', '.join(kept)}): "
            f"{rows[[r['task'] for r in rows].index(kept[0])]['int8_notes']['kept_out_of_xnnpack']}."
            if kept else "")  # fmt: skip
    int8 = {r["task"]: r["int8_metric"] for r in rows}  # min-max: built above
    cal_rows = [["minmax", f"{int8[CAL_TASK]:.2f}",
                 f"{fp32[CAL_TASK] - int8[CAL_TASK]:+.2f}"]]
    for calibrator in CALIBRATORS[1:]:
        task, cfg = load_task(f"zoo:{CAL_TASK}"), ExecuTorchConfig(calibrator=calibrator)
        art = apply_recipe([cfg], TransformContext(task=task, workdir=ctx.work,
                                                   name=f"{CAL_TASK}-{calibrator}"))
        acc = task.metric(TARGET.outputs(art, task.eval), task.eval.targets)
        cal_rows.append([calibrator, f"{acc:.2f}", f"{task.metric.drop(fp32[CAL_TASK], acc):+.2f}"])
    note += (f"\n\nINT8 calibrators on {CAL_TASK} (FP32 {fp32[CAL_TASK]:.2f}); `minmax` and "
             "`histogram` are torchao's observers, the others edgeshrink's calibrators through "
             "`RangeObserver`:\n\n" + ctx.table(["calibrator", "INT8 acc", "drop (pt)"], cal_rows))
    return ("ExecuTorch 1.4.1 runtime (Python bindings), XNNPACK delegate; .pte exported at "
            "batch 1; INT8 = PT2E XNNPACKQuantizer, per-channel symmetric weights, min-max "
            "activations on the task's calibration set; accuracy over the whole eval set "
            "in ExecuTorch; latency batch 1, 1 thread, FP32/INT8 interleaved.\n\n"
            + table + note + "\n")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from run import Ctx

    with tempfile.TemporaryDirectory() as tmp:
        print(run(Ctx(work=Path(tmp), quick="--quick" in sys.argv)))
