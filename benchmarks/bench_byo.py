"""Bring your own model: one study per model file a user may have, same net, same data.

A small CNN is trained on sklearn's digits and saved as ONNX, torch.export .pt2, TorchScript
and a state dict (+ its architecture file); ``edgeshrink study --model FILE --data
digits.npz`` then runs the same plan on each. The four baselines must agree (one model),
and techniques a format cannot take must be listed, with the reason, not measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

PLAN = """\
int8-static:
  - {kind: int8_static}
int8-dynamic:
  - {kind: int8_dynamic}
fp16:
  - {kind: fp16}
prune-50-ft:
  - {kind: unstructured, sparsity: 0.5}
  - {kind: finetune, epochs: 2}
structured-50-ft:
  - {kind: structured, ratio: 0.5}
  - {kind: finetune, epochs: 2}
"""
KINDS = ("onnx", "pt2", "torchscript", "state_dict")


def run(ctx) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
    from byo_files import write_files

    from edgeshrink.byo.build import byo_task
    from edgeshrink.study import load_plan, run_study

    files = write_files(ctx.work / "byo")
    plan_path = ctx.work / "byo" / "plan.yaml"
    plan_path.write_text(PLAN)
    rows, failed, desc = [], [], ""
    for kind in KINDS:
        arch = f"{files['arch']}:DigitsNet" if kind == "state_dict" else None
        task = byo_task(files[kind], files["npz"], arch=arch)
        desc = task.description.split(": ", 1)[1]
        start = time.perf_counter()
        run = run_study(task, load_plan(plan_path), ctx.work / f"byo-{kind}", threads=(1,))
        seconds = time.perf_counter() - start
        for c in run.all_candidates():
            rows.append([kind, c.name, f"{c.value:.2f}", f"{c.size_bytes:,}",
                         f"{c.size_compressed_bytes:,}", f"{c.macs:,}",
                         f"{100 * c.sparsity:.0f}", f"{c.latency_ms['p50']:.4f}"])
        failed += [[kind, f["name"], f["error"]] for f in run.failed]
        rows.append([kind, f"(whole study: {seconds:.0f} s)", "", "", "", "", "", ""])
    return (
        "Command: `edgeshrink study --model FILE --data digits.npz --plan plan.yaml "
        "--threads 1` for each FILE (`benchmarks/run.py --only byo`). Data: " + desc + ".\n\n"
        + ctx.table(["model file", "candidate", "accuracy %", "file bytes", "deflated",
                     "MACs", "sparsity %", "p50 ms"], rows)
        + "\nNot built (one sentence each, as the study prints them):\n\n"
        + ctx.table(["model file", "candidate", "reason"], failed)
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from run import main

    raise SystemExit(main(["--only", "byo"]))
