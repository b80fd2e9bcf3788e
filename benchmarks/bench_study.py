"""The default study (``make demo``'s job) as a table, and what the advisor picks per device.

Every figure is measured on the exported artifact in ONNX Runtime on this machine (batch 1).
"""

from __future__ import annotations

import time

DEVICES = ("cortex-m7", "raspberry-pi-4", "jetson-orin-nano", "nvidia-a100", "this-host")


def _kb(n):
    return f"{n / 1024:.1f}" if n else ""


def run(ctx) -> str:
    from edgeshrink.advisor import Constraints, advise_run
    from edgeshrink.errors import UserError
    from edgeshrink.study import named_plan, run_study
    from edgeshrink.task import load_task

    out = ctx.work / "study-default"
    task = load_task("zoo:lenet5-mnist")
    load = ctx.wait_quiet()
    start = time.perf_counter()
    run = run_study(task, named_plan("default", task), out, threads=(1, 2))
    seconds = time.perf_counter() - start
    base = run.baseline
    rows = []
    for c in run.all_candidates():
        by = c.latency_ms["by_threads"]
        rows.append([
            c.name, c.family, f"{c.value:.2f}", f"{c.metric_drop:+.2f}", _kb(c.size_bytes),
            f"{c.size_bytes / base.size_bytes:.3f}", _kb(c.size_compressed_bytes),
            f"{c.size_compressed_bytes / base.size_compressed_bytes:.3f}",
            f"{by['1']['p50']:.4f}", f"{by['2']['p50']:.4f}", f"{c.peak_memory_mb:.1f}",
            f"{100 * c.sparsity:.0f}", "◆" if c.name in run.pareto else "",
        ])  # fmt: skip
    text = (
        "Command: `edgeshrink study` (task `zoo:lenet5-mnist`, the default plan), "
        f"{seconds:.0f} s for the whole study; other processes used "
        f"{load if load is not None else float('nan'):.2f} cores when it started.\n\n"
        + ctx.table(["candidate", "family", "accuracy %", "drop", "file KiB", "x base",
                     "deflated KiB", "x base", "p50 ms 1T", "p50 ms 2T", "peak MiB",
                     "sparsity %", "pareto"], rows)
        + "\nLatencies of a 62k-parameter LeNet are tens of microseconds: graph overhead "
        "dominates, so QDQ INT8 is not faster here (it is on ResNet-18/MobileNetV2, see the "
        "quantization section); unstructured zeros shrink only the deflated size.\n\n"
    )
    picks = []
    for device in DEVICES:
        try:
            rec = advise_run(out, device, Constraints(max_drop=1.0))
            picks.append([device, rec["priority"], rec["candidate"], rec["reasons"][0]])
        except UserError as exc:
            picks.append([device, "", "(none)", str(exc)])
    text += "What the advisor recommends from this study (max drop 1.0 point, the profile's "
    text += "default priority):\n\n" + ctx.table(["device", "priority", "pick", "why"], picks)
    return text


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from run import main

    raise SystemExit(main(["--only", "study"]))
