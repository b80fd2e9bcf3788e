"""Issue 14: the same two CNNs in FP32 and INT8 across ONNX Runtime, OpenVINO, LiteRT and
ExecuTorch, measured side by side in one run.

Models: MobileNetV2 with its real ImageNet weights (zoo:mobilenetv2-imagenet) and an
ImageNet-layout ResNet-18 with *seeded random* weights (no ResNet-18 ImageNet weights ship
offline here, DATA.md); both on the same real photo crops of zoo:mobilenetv2-imagenet.
Fidelity: top-1 agreement (%) and mean KL(softmax FP32 || softmax variant) against PyTorch
FP32 on the eval crops. Latency: batch 1, one thread, each variant's p50 over ORT FP32's in
the same interleaved run (``edgeshrink.bench.timing.time_interleaved``), median of repeats.

Files are built by the targets' recipe steps (``apply_recipe`` with StaticInt8Config,
OpenVinoInt8Config, LiteRTConfig, ExecuTorchConfig) where a builder is registered; where
not (yet), the .tflite/.pte is built here directly with litert-torch / ExecuTorch, and the
row says so. LiteRT INT8 is also built with litert-torch's own default PT2E quantization
(``get_symmetric_quantization_config()``: per-tensor, static) on the same calibration crops.

Run alone: ``.venv/bin/python benchmarks/run.py --only runtimes`` (env
``BENCH_RUNTIMES_EVAL=N`` limits the eval crops, ``BENCH_RUNTIMES_CALIB=N`` sets the
calibration crops (default 128), ``BENCH_RUNTIMES_MODELS=mobilenetv2``
runs one model).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

THREADS = 1
CALIB_N = int(os.environ.get("BENCH_RUNTIMES_CALIB", "128"))  # the same crops for every quantizer
EVAL_N = int(os.environ.get("BENCH_RUNTIMES_EVAL", "400"))


@dataclass
class Row:
    """One variant: a runner ``fn(x) -> logits`` on one batch-1 input, its file, how built."""

    runtime: str
    precision: str
    how: str
    fn: object
    size: int
    build_s: float
    path: Path | None = None
    outputs: np.ndarray | None = None
    batched: bool = False  # the file takes any batch: evaluated 32 at a time


# ------------------------------------------------------------------------------ tasks


def _tasks() -> dict:
    import torch

    from edgeshrink.data import Dataset
    from edgeshrink.task import Task, load_task
    from edgeshrink.zoo.models_resnet import ResNet18
    from edgeshrink.zoo.tasks_pretrained import agreement_metric, run_batched

    mnv2 = load_task("zoo:mobilenetv2-imagenet")
    x_eval, x_cal = mnv2.eval.inputs[0][:EVAL_N], mnv2.calibration.inputs[0][:CALIB_N]
    out = {}
    wanted = os.environ.get("BENCH_RUNTIMES_MODELS", "mobilenetv2,resnet18").split(",")
    if "mobilenetv2" in wanted:
        out["MobileNetV2 (ImageNet weights)"] = Task(
            "mobilenetv2", mnv2.model, None, Dataset((x_cal,), mnv2.calibration.targets[:CALIB_N]),
            Dataset((x_eval,), mnv2.eval.targets[:EVAL_N]), metric=agreement_metric)
    if "resnet18" in wanted:
        torch.manual_seed(0)
        model = ResNet18().eval()
        out["ResNet-18 (seeded random weights)"] = Task(
            "resnet18", model, None, Dataset((x_cal,), run_batched(model, (x_cal,))),
            Dataset((x_eval,), run_batched(model, (x_eval,))), metric=agreement_metric)
    return out


# ------------------------------------------------------------------------------ builders


def _recipe(ctx, task, cfg, name: str):
    """The artifact of our recipe step ``cfg``, or None when no builder is registered."""
    from edgeshrink.errors import UserError
    from edgeshrink.transforms import TransformContext, apply_recipe

    try:
        return apply_recipe([cfg] if cfg else [], TransformContext(
            task=task, workdir=ctx.work, name=f"{task.name}-{name}"))
    except UserError as exc:
        ctx.log(f"{name}: our builder is not available ({exc}); building it directly")
        return None


def _target_runner(art):
    """The target's own runner for ``art``, or None while the target is a stub."""
    from edgeshrink.targets import TargetError, target_for

    try:
        return target_for(art).load(Path(art.path), threads=THREADS)
    except (TargetError, KeyError):
        return None


def _quiet():
    """Silence the converters' stdout chatter (their logs go to stderr)."""
    return contextlib.redirect_stdout(io.StringIO())


def _example(task):
    import torch

    return (torch.from_numpy(task.calibration.inputs[0][:1]),)


def _litert_runner(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=THREADS)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        if inp["dtype"] != np.float32:  # full-integer I/O: quantize, then dequantize
            s, z = inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            s, z = out["quantization"]
            y = (y.astype(np.float32) - z) * s
        return y

    return run


def _pte_runner(path: Path):
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    _unsafe_reset_threadpool(THREADS)
    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


def _pt2e_calibrated(task, quantizer):
    """The model prepared with ``quantizer`` and calibrated on the task's crops, in batches
    of 32 (exported with a dynamic batch: PT2E's histogram observers cost ~6 s a call here,
    whatever the batch)."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    x32 = torch.from_numpy(task.calibration.inputs[0][:32])
    batch = torch.export.Dim("batch", min=1, max=1024)
    pm = torch.export.export(task.model.eval(), (x32,), dynamic_shapes=({0: batch},)).module()
    pm = prepare_pt2e(pm, quantizer)
    with torch.no_grad():
        for (x,) in task.calibration.numpy_batches(32):
            pm(torch.from_numpy(x))
    return pm


def _direct_tflite(task, path: Path, quant: str | None) -> Path:
    import litert_torch

    if quant is None:
        with _quiet():
            litert_torch.convert(task.model.eval(), _example(task)).export(str(path))
        return path
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    q = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=quant == "per-channel"))
    pm = convert_pt2e(_pt2e_calibrated(task, q), fold_quantize=False)
    with _quiet():
        litert_torch.convert(pm, _example(task), quant_config=QuantConfig(pt2e_quantizer=q)
                             ).export(str(path))
    return path


def _direct_pte(task, path: Path, int8: bool) -> Path:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model = task.model.eval()
    if int8:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        q = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        model = convert_pt2e(_pt2e_calibrated(task, q))
    ep = torch.export.export(model, _example(task))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(prog.buffer)
    return path


# ------------------------------------------------------------------------------ rows


def _ort_rows(ctx, task) -> list[Row]:
    from edgeshrink.quant import StaticInt8Config

    rows = []
    # min-max (every INT8 row's default), percentile (the best ONNX INT8 on MobileNetV2
    # before bias correction) and percentile + bias correction, as the LiteRT rows
    for prec, cfg, tag in (("FP32", None, ""), ("INT8", StaticInt8Config(), ""),
                           ("INT8", StaticInt8Config(calibrator="percentile"), "-pct"),
                           ("INT8", StaticInt8Config(calibrator="percentile",
                                                     bias_correction=True), "-pct-bc")):
        t0 = time.perf_counter()
        art = _recipe(ctx, task, cfg, f"ort-{prec}{tag}")
        run = _target_runner(art)
        how = "our export" if cfg is None else (
            f"ours: StaticInt8Config({_cfg_args(cfg) if tag else ''}) "
            f"({art.notes.get('format', 'QDQ')})")
        rows.append(Row("ONNX Runtime", prec, how, lambda x, r=run: r(x), art.path.stat().st_size,
                        time.perf_counter() - t0, path=Path(art.path), batched=True))
    return rows


def _openvino_rows(ctx, task, fp32_onnx: Path) -> list[Row]:
    import openvino as ov

    from edgeshrink.quant import OpenVinoInt8Config
    from edgeshrink.targets.openvino import compile_openvino

    t0 = time.perf_counter()
    fp32 = compile_openvino(ov.Core().read_model(str(fp32_onnx)), THREADS)
    rows = [Row("OpenVINO", "FP32", "FP32 .onnx read by OpenVINO", fp32,
                fp32_onnx.stat().st_size, time.perf_counter() - t0, batched=True)]
    t0 = time.perf_counter()
    art = _recipe(ctx, task, OpenVinoInt8Config(), "ov-int8")
    ir = Path(art.notes.get("ir") or art.path)
    size = sum(p.stat().st_size for p in (ir, ir.with_suffix(".bin")) if p.is_file())
    rows.append(Row("OpenVINO", "INT8", "ours: OpenVinoInt8Config() IR",
                    compile_openvino(ov.Core().read_model(str(ir)), THREADS), size,
                    time.perf_counter() - t0, batched=True))
    return rows


def _built_or_direct(ctx, task, cfg, name: str, direct, runner) -> tuple[Path, object, str]:
    """(file, runner, how): our builder's file where registered, else built directly."""
    art = _recipe(ctx, task, cfg, name)
    if art is not None:
        run = _target_runner(art) or runner(Path(art.path))
        return Path(art.path), run, f"ours: {type(cfg).__name__}({_cfg_args(cfg)})"
    suffix = ".tflite" if name.startswith("litert") else ".pte"
    path = direct(ctx.work / f"{task.name}-{name}-direct{suffix}")
    return path, runner(path), "built here directly (builder not merged yet)"


def _cfg_args(cfg) -> str:
    from edgeshrink.config import config_to_dict

    return ", ".join(f"{k}={v!r}" for k, v in config_to_dict(cfg).items() if k != "kind")


def _litert_rows(ctx, task, failed: list[str]) -> list[Row]:
    from edgeshrink.targets.configs import LiteRTConfig

    def ours(prec: str, cfg, quant: str | None, tag: str = "") -> list[Row]:
        t0 = time.perf_counter()
        path, run, how = _built_or_direct(
            ctx, task, cfg, f"litert-{prec}{tag}", lambda p: _direct_tflite(task, p, quant),
            _litert_runner)
        if quant and how.startswith("built here"):
            how = ("litert-torch PT2E per-channel symmetric, static (built here: builder not "
                   "merged yet)")
        return [Row("LiteRT", prec, how, run, path.stat().st_size, time.perf_counter() - t0)]

    def default() -> list[Row]:
        t0 = time.perf_counter()
        path = _direct_tflite(task, ctx.work / f"{task.name}-litert-default.tflite", "default")
        return [Row("LiteRT", "INT8", "peer: litert-torch default PT2E "
                    "(get_symmetric_quantization_config(): per-tensor, static)",
                    _litert_runner(path), path.stat().st_size, time.perf_counter() - t0)]

    return (_guarded(ctx, "LiteRT FP32", lambda: ours("FP32", LiteRTConfig(precision="fp32"),
                                                      None), failed)
            + _guarded(ctx, "LiteRT INT8 (ours)", lambda: ours(
                "INT8", LiteRTConfig(precision="int8"), "per-channel"), failed)
            + _guarded(ctx, "LiteRT INT8 percentile (ours)", lambda: ours(
                "INT8", LiteRTConfig(precision="int8", calibrator="percentile"), "per-channel",
                "-pct"), failed)
            + _guarded(ctx, "LiteRT INT8 percentile + bias correction (ours)", lambda: ours(
                "INT8", LiteRTConfig(precision="int8", calibrator="percentile",
                                     bias_correction=True), "per-channel", "-pct-bc"), failed)
            + _guarded(ctx, "LiteRT INT8 (litert-torch default)", default, failed))


def _executorch_rows(ctx, task, failed: list[str]) -> list[Row]:
    from edgeshrink.targets.configs import ExecuTorchConfig

    def one(prec: str) -> list[Row]:
        t0 = time.perf_counter()
        path, run, how = _built_or_direct(
            ctx, task, ExecuTorchConfig(precision=prec.lower()), f"executorch-{prec}",
            lambda p: _direct_pte(task, p, prec == "INT8"), _pte_runner)
        if how.startswith("built here"):
            how = ("XNNPACK, PT2E XNNPACKQuantizer per-channel" if prec == "INT8"
                   else "XNNPACK-delegated") + " (built here: builder not merged yet)"
        return [Row("ExecuTorch", prec, how, run, path.stat().st_size, time.perf_counter() - t0)]

    return [r for prec in ("FP32", "INT8")
            for r in _guarded(ctx, f"ExecuTorch {prec}", lambda p=prec: one(p), failed)]


def _guarded(ctx, label: str, build, failed: list[str]) -> list[Row]:
    """A runtime whose build fails is logged, named under the table and left out."""
    try:
        return build()
    except Exception as exc:
        why = f"{label}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ctx.log(f"failed: {why}")
        failed.append(why)
        return []


# ------------------------------------------------------------------------------ table


def _kl(ref: np.ndarray, out: np.ndarray) -> float:
    def logsoftmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    lp, lq = logsoftmax(ref.astype(np.float64)), logsoftmax(out.astype(np.float64))
    return float(np.mean((np.exp(lp) * (lp - lq)).sum(1)))


def _evaluate(row: Row, task) -> None:
    xs, step = task.eval.inputs[0], 32 if row.batched else 1
    chunks = [xs[i : i + step] for i in range(0, len(xs), step)]
    row.outputs = np.concatenate([np.asarray(row.fn(c)).reshape(len(c), -1) for c in chunks])


def _model_table(ctx, title: str, task) -> str:
    failed: list[str] = []
    rows = _guarded(ctx, "ONNX Runtime", lambda: _ort_rows(ctx, task), failed)
    if not rows:
        return f"\n### {title}\n\nNo ORT FP32 baseline: {'; '.join(failed)}\n"
    fp32_onnx = rows[0].path
    rows += _guarded(ctx, "OpenVINO", lambda: _openvino_rows(ctx, task, fp32_onnx), failed)
    rows += _litert_rows(ctx, task, failed)
    rows += _executorch_rows(ctx, task, failed)
    ctx.log(f"{title}: {len(rows)} files built; evaluating on {len(task.eval.targets)} crops")
    ok = []
    for row in rows:
        try:
            _evaluate(row, task)
            ok.append(row)
        except Exception as exc:
            failed.append(f"{row.runtime} {row.precision} ({row.how}) failed to run: "
                          f"{' '.join(str(exc).split())[:200]}")
            ctx.log(failed[-1])
    names = {f"{r.runtime} {r.precision} #{i}": r for i, r in enumerate(ok)}
    base = next(n for n, r in names.items() if r.runtime == "ONNX Runtime" and r.precision == "FP32")
    x1 = task.eval.inputs[0][:1]
    load = ctx.wait_quiet()
    stats = ctx.ratio_medians({n: (lambda r=r: r.fn(x1)) for n, r in names.items()}, base,
                              repeats=3, runs=15 if ctx.quick else 30, warmup=5)
    ref = task.eval.targets
    table = []
    for n, r in names.items():
        agree = 100.0 * float(np.mean(r.outputs.argmax(1) == ref.argmax(1)))
        table.append([r.runtime, r.precision, r.how, f"{agree:.1f}", f"{_kl(ref, r.outputs):.4f}",
                      f"{stats['ratio'][n]:.2f}", "{:.2f}-{:.2f}".format(*stats["spread"][n]),
                      f"{stats['p50_ms'][n]:.2f}", f"{r.size / 1e6:.2f}", f"{r.build_s:.0f}"])
    note = (f"\n{len(ref)} eval crops (limited for time; the 16 eval photos x 25 views of "
            f"zoo:mobilenetv2-imagenet), {CALIB_N} calibration crops of 7 other photos. "
            f"Others' CPU use before timing {load or 0:.2f} cores, max during "
            f"{stats['others_cpu_cores']:.2f}; load average {os.getloadavg()[0]:.1f}; "
            f"{stats['repeats']} interleaved repeats.\n")
    note += _bar_line(names, ref)
    note += "".join(f"\nNot in the table: {why}\n" for why in failed)
    return (f"\n### {title}\n\n" + ctx.table(
        ["runtime", "precision", "how the file was built", "top-1 agreement %", "KL to FP32",
         "latency / ORT FP32", "ratio spread", "p50 ms", "size MB", "build s"], table) + note)


def _bar_line(names: dict, ref: np.ndarray) -> str:
    """Issue 14's bar read out: our best LiteRT INT8 against the best ONNX Runtime INT8 of
    this run (top-1 agreement), with McNemar's exact test on the same crops."""
    def best(runtime: str):
        rows = [r for r in names.values() if r.runtime == runtime and r.precision == "INT8"
                and r.how.startswith("ours")]
        return max(rows, key=lambda r: np.mean(r.outputs.argmax(1) == ref.argmax(1)),
                   default=None)

    lite, onnx = best("LiteRT"), best("ONNX Runtime")
    if lite is None or onnx is None:
        return ""
    from edgeshrink.measure.intervals import drop_interval

    right = [r.outputs.argmax(1) == ref.argmax(1) for r in (lite, onnx)]
    test = drop_interval(right[1].astype(np.float32), right[0].astype(np.float32))
    return (f"\nBar (issue 14): our best LiteRT INT8 ({lite.how}) {100 * right[0].mean():.2f} % "
            f"vs the best ONNX Runtime INT8 ({onnx.how}) {100 * right[1].mean():.2f} % top-1 "
            f"agreement; crops only LiteRT gets right {int(np.sum(right[0] & ~right[1]))}, "
            f"only ORT {int(np.sum(~right[0] & right[1]))}; {test['test']} p = "
            f"{test['drop_p']:.2f}, ORT minus LiteRT 95 % interval "
            "[{:.2f}, {:.2f}] pt.\n".format(*(100 * x for x in test["drop_ci95"])))


def _versions() -> str:
    from importlib import metadata

    out = []
    for pkg in ("onnxruntime", "openvino", "ai-edge-litert", "litert-torch", "executorch",
                "torch", "torchao"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


def _machine() -> str:
    from edgeshrink.bench.machine import machine_info

    m = machine_info()
    return (f"{m['cpu_model']} ({m['machine']}), {m['cpu_count']} cores, CPU flags "
            f"{' '.join(m['cpu_flags'])}")


def run(ctx) -> str:
    import logging

    import torch

    torch.set_num_threads(2)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    started = time.perf_counter()
    parts = [f"Batch 1, {THREADS} thread per runtime; latency ratios are each variant's p50 over "
             "ORT FP32's in the same interleaved run (A B C ... C B A), median of repeats. "
             "Fidelity is against PyTorch FP32 on the same crops. ResNet-18 has seeded random "
             "weights (no ImageNet ResNet-18 weights ship offline here, DATA.md): its fidelity "
             "says how faithfully each file reproduces the network's arithmetic, not accuracy. "
             "A row built here directly, not by our LiteRTConfig/ExecuTorchConfig builder, "
             "says so. "
             f"Versions: {_versions()}. Machine: {_machine()}.\n"]
    for title, task in _tasks().items():
        parts.append(_model_table(ctx, title, task))
        ctx.log(f"{title} done")
    parts.append(f"\nTotal {time.perf_counter() - started:.0f} s. `build s` is wall time on a "
                 "shared, busy machine, not a benchmark of the converters.\n")
    return "\n".join(parts)
