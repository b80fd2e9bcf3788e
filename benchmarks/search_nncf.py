"""Part of ``bench_search``: our best INT8-only trial against NNCF's accuracy control.

NNCF's ``quantize_with_accuracy_control`` (OpenVINO model, ``max_drop`` absolute on the
same accuracy) and an INT8-only search (per-layer INT8/FP32, calibrator, bias correction;
no pruning) on this host's profile with the same ``max_drop``; the two shipped models are
timed side by side (1 thread, interleaved) and scored on the same evaluation set.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

TASK = "lenet5-mnist"
MAX_DROP = 1.0
TRIALS = 10


def _ours(work: Path):
    from edgeshrink.search import SearchSettings, clean_search_dir, run_search

    out = work / f"int8-only-{TASK}"
    if not (out / "done").exists():
        clean_search_dir(out)
        start = time.perf_counter()
        run_search(SearchSettings(
            task=f"zoo:{TASK}", device="x86-xeon-2vcpu", trials=TRIALS, out=str(out),
            constraints={"max_drop": MAX_DROP, "max_size_bytes": None, "max_latency_ms": None,
                         "max_energy_mj": None},
            priority="speed", threads=(1,), budget_s=0.3, only="int8"))
        (out / "done").write_text(f"{time.perf_counter() - start:.0f}")
    return out


def _nncf(task, work: Path):
    import nncf
    import openvino as ov

    from edgeshrink.export import export_onnx
    from edgeshrink.quant.openvino import compile_openvino

    fp32 = export_onnx(task.model, task.example_inputs(), work / "nncf-fp32.onnx",
                       input_names=task.input_names)
    model = ov.Core().read_model(str(fp32))
    calib = task.calibration.inputs[0][:300]
    evalx, evaly = task.eval.inputs[0], task.eval.targets

    def validate(compiled, items) -> float:
        outs = np.concatenate([compiled([x])[0] for x, _ in items])
        return float(np.mean(outs.argmax(1) == np.array([y for _, y in items]).ravel()))

    val = nncf.Dataset([(evalx[i:i + 1], evaly[i:i + 1]) for i in range(len(evalx))],
                       lambda item: item[0])
    start = time.perf_counter()
    q = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]), val,
        validation_fn=lambda compiled, data: validate(compiled, list(data)),
        max_drop=MAX_DROP / 100, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib))
    seconds = time.perf_counter() - start
    run = compile_openvino(q, 1)
    acc = 100 * float(np.mean(np.concatenate([run(evalx[i:i + 1]) for i in range(len(evalx))])
                              .argmax(1) == evaly))
    return run, acc, seconds


def compare(ctx, work: Path) -> str:
    from edgeshrink.results import load_run
    from edgeshrink.task import load_task

    out = _ours(work)
    run = load_run(out)
    base = run.baseline.value
    ok = [c for c in run.candidates if c.metric_drop <= MAX_DROP and c.precision == "int8"]
    if not ok:
        return "NNCF comparison: no INT8-only trial within the drop.\n"
    best = min(ok, key=lambda c: c.p50)
    task = load_task(f"zoo:{TASK}")
    try:
        nncf_run, nncf_acc, nncf_s = _nncf(task, work)
    except ImportError as exc:
        return f"NNCF comparison skipped: {exc} (`make peers` installs nncf and openvino).\n"
    x1 = task.eval.inputs[0][:1]
    ours = ctx.ort_callable(out / best.artifact, {task.input_names[0]: x1}, threads=1)
    r = ctx.ratio_medians({"ours (ORT)": ours, "NNCF (OpenVINO)": lambda: nncf_run(x1)},
                          "NNCF (OpenVINO)", repeats=7, runs=200)
    rows = [
        ["edgeshrink search, best INT8-only trial", best.name, f"{best.value:.2f}",
         f"{best.metric_drop:+.2f}", f"{r['p50_ms']['ours (ORT)'] * 1e3:.1f}",
         f"{r['ratio']['ours (ORT)']:.3f} ({r['spread']['ours (ORT)'][0]:.3f}-"
         f"{r['spread']['ours (ORT)'][1]:.3f})", (out / "done").read_text() + " s"],
        ["NNCF quantize_with_accuracy_control", "OpenVINO INT8", f"{nncf_acc:.2f}",
         f"{base - nncf_acc:+.2f}", f"{r['p50_ms']['NNCF (OpenVINO)'] * 1e3:.1f}", "1",
         f"{nncf_s:.0f} s"],
    ]
    recipe = "; ".join(f"{d['kind']}({', '.join(f'{k}={v}' for k, v in d.items() if k != 'kind' and v not in ((), [], None))})"
                       for d in best.recipe)
    return (f"INT8 only on `zoo:{TASK}`, max_drop {MAX_DROP} point, this host (x86-xeon-2vcpu, "
            f"measured latency, 1 thread), {TRIALS} trials; baseline accuracy {base:.2f} %. "
            f"Timed interleaved, {r['repeats']} repeats x 200 runs, median p50 and ratio to "
            f"NNCF (min-max over repeats); other processes used up to "
            f"{r['others_cpu_cores']:.2f} cores.\n\n"
            + ctx.table(["method", "model", "accuracy %", "drop", "p50 us", "x NNCF",
                         "search time"], rows)
            + f"\nOur trial's recipe: {recipe}.\n")
