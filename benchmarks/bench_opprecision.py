"""Device estimates weighted by the precision each op of the shipped file runs in.

For zoo CNNs: FP32, ORT dynamic INT8 (MatMul/Gemm only: every Conv stays FP32) and ORT
static INT8 (QDQ, U8S8) ONNX files, built by the study's own transforms. Per file: the
share of MACs that runs in int8 (read from the file, ``measure.op_precision``), the latency
measured here in ONNX Runtime (interleaved, ratio to FP32), and the Raspberry Pi 4 roofline
estimate from the precision label alone (before issue #14) and from the per-op split.
The claim: a dynamic-INT8 CNN is no longer estimated faster than its FP32 baseline.

Run alone: ``.venv/bin/python benchmarks/bench_opprecision.py``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

TASKS = ("lenet5-digits", "lenet5-mnist")
DEVICE = "raspberry-pi-4"


def _files(task, work: Path) -> dict[str, tuple[Path, str]]:
    from edgeshrink.quant.ort import DynamicInt8Config, StaticInt8Config
    from edgeshrink.transforms import TransformContext, apply_recipe

    out = {}
    for name, recipe in (("fp32", []), ("int8-dynamic", [DynamicInt8Config()]),
                         ("int8-static", [StaticInt8Config()])):
        art = apply_recipe(recipe, TransformContext(task=task, workdir=work, name=name))
        out[name] = (art.path, art.precision)
    return out


def rows(ctx) -> list[dict]:
    from edgeshrink.devices import load_profile
    from edgeshrink.devices.estimate import Workload, estimate
    from edgeshrink.measure.artifact import runtime_node_count
    from edgeshrink.measure.model_stats import count_macs, count_params
    from edgeshrink.measure.op_precision import macs_by_precision
    from edgeshrink.task import load_task

    pi = load_profile(DEVICE)
    out = []
    for name in TASKS:
        task = load_task(f"zoo:{name}")
        macs, act = count_macs(task.model, task.example_inputs())
        with tempfile.TemporaryDirectory() as tmp:
            files = _files(task, Path(tmp))
            timed = ctx.ratio_medians({k: ctx.ort_callable(p) for k, (p, _) in files.items()},
                                      "fp32", repeats=5, runs=200)
            for variant, (path, precision) in files.items():
                split = macs_by_precision(path)
                w = Workload(name, macs=macs, params=count_params(task.model),
                             activation_elems=act, precision=precision,
                             ops=runtime_node_count(path), file_bytes=path.stat().st_size,
                             macs_by_precision=split)
                out.append({"task": name, "variant": variant,
                            "int8_share": split.get("int8", 0) / sum(split.values()),
                            "ratio": timed["ratio"][variant],
                            "label": estimate(dataclasses.replace(w, macs_by_precision=None),
                                              pi).latency_ms,
                            "split": estimate(w, pi).latency_ms,
                            "others": timed["others_cpu_cores"]})
    return out


def run(ctx) -> str:
    table = rows(ctx)
    lines = [
        f"Batch 1, {ctx.threads} thread(s), ONNX Runtime CPU EP; measured = median ratio of "
        "p50 to FP32 over 5 interleaved repeats; estimates on "
        f"`{DEVICE}` (roofline + overheads), from the precision label alone (before) and "
        "from each op's precision read from the file (now).",
        "",
        "| task | file | int8 share of MACs | measured here / FP32 | Pi 4 est. by label ms "
        "| Pi 4 est. by op ms | est. by op / FP32 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    fp32 = {r["task"]: r["split"] for r in table if r["variant"] == "fp32"}
    for r in table:
        lines.append(f"| {r['task']} | {r['variant']} | {100 * r['int8_share']:.1f} % | "
                     f"{r['ratio']:.2f} | {r['label']:.4f} | {r['split']:.4f} | "
                     f"{r['split'] / fp32[r['task']]:.2f} |")
    if table:
        lines += ["", f"Other processes used up to {max(r['others'] for r in table):.2f} CPU "
                  "cores while this was timed."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from run import Ctx

    with tempfile.TemporaryDirectory() as tmp:
        print(run(Ctx(work=Path(tmp))))
