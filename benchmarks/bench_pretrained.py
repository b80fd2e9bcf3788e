"""Issue 5: INT8 of real pretrained models against the peers, same inputs, same run.

(1) MobileNetV2 (ImageNet weights) on zoo:mobilenetv2-imagenet's 400 eval crops: top-1/top-5
    agreement and mean KL to FP32, latency / ORT FP32 at batch 1, 2 threads. Peers: ONNX
    Runtime's quantizer (QDQ U8S8 per-channel, MinMax and Percentile), NNCF + OpenVINO INT8.
    Ours: our calibrators, FP32 exclusion of the most sensitive layers, QAT by distillation.
(2) MiniLM (zoo:minilm): cosine mean/min to FP32 on the 500 fortunes quotes, probe accuracy,
    latency at sequence 128. Peers: ORT dynamic per-tensor / per-channel, torch dynamic.
    Ours: dynamic with exclusions, SmoothQuant + static, per-token dynamic INT8,
    MatMulNBits 8/4-bit with int8 compute.
(3) O-Net (zoo:onet-faces): accuracy, AUC, mean |dP(face)|. Peers: ORT per-channel, NNCF.

Run alone: ``.venv/bin/python benchmarks/run.py --only pretrained``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import time
from pathlib import Path

import numpy as np

EVAL_BATCH = 32


def _ort_static(fp32: Path, out: Path, task, method: str) -> Path:
    """ORT's own quantizer, called directly: QDQ, uint8 activations, per-channel int8."""
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    names = list(task.input_names)
    calib = task.calibration

    class Reader:
        def __init__(self):
            self.it = iter(list(calib.numpy_batches(1)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else dict(zip(names, x, strict=True))

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(pre), str(out), Reader(), activation_type=QuantType.QUInt8,
                        per_channel=True,
                        calibrate_method=getattr(CalibrationMethod, method))  # fmt: skip
    return out


def _ort_dynamic(fp32: Path, out: Path, per_channel: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_dynamic(str(pre), str(out), per_channel=per_channel, weight_type=QuantType.QInt8)
    return out


def _nncf(fp32: Path, task, out: Path):
    """NNCF + OpenVINO INT8 on the task's calibration set: (compiled fn, IR bytes)."""
    import nncf
    import openvino as ov

    from edgeshrink.quant.openvino import compile_openvino

    items = [tuple(b) for b in task.calibration.numpy_batches(1)]
    q = nncf.quantize(ov.Core().read_model(str(fp32)), nncf.Dataset(items), subset_size=len(items))
    ov.save_model(q, str(out))
    return compile_openvino(q, 2), out.stat().st_size + out.with_suffix(".bin").stat().st_size


class _Variant:
    """One row: a callable on one example, its outputs on the eval set, its size."""

    def __init__(self, fn, outputs: np.ndarray, size: int | None, quantize_s: float = 0.0,
                 compiled=None):  # fmt: skip
        self.fn, self.outputs, self.size, self.quantize_s = fn, outputs, size, quantize_s
        self.compiled = compiled  # compile_openvino's callable, for the OpenVINO variants


def _ort_variant(path: Path, task, t0: float) -> _Variant:
    from edgeshrink.export import ort_session

    secs = time.perf_counter() - t0
    sess = ort_session(path, 2)
    names = [i.name for i in sess.get_inputs()]
    outs = np.concatenate([sess.run(None, dict(zip(names, b, strict=True)))[0]
                           for b in task.eval.numpy_batches(EVAL_BATCH)])  # fmt: skip
    one = dict(zip(names, (a[:1] for a in task.eval.inputs), strict=True))
    return _Variant(lambda: sess.run(None, one), outs, path.stat().st_size, secs)


def _fn_variant(fn, size, *, task, t0: float, batch: int = 1) -> _Variant:
    secs = time.perf_counter() - t0
    outs = np.concatenate([np.asarray(fn(*b)) for b in task.eval.numpy_batches(batch)])
    one = tuple(a[:1] for a in task.eval.inputs)
    return _Variant(lambda: fn(*one), outs, size, secs,
                    compiled=fn if hasattr(fn, "compiled") else None)  # fmt: skip


def _ours(ctx, task, recipe: list, name: str) -> _Variant:
    from edgeshrink.transforms import TransformContext, apply_recipe

    t0 = time.perf_counter()
    art = apply_recipe(recipe, TransformContext(task=task, workdir=ctx.work, name=name))
    if art.simulate is not None:  # the OpenVINO target
        return _fn_variant(art.simulate, art.notes.get("ir_bytes"), task=task, t0=t0)
    return _ort_variant(art.path, task, t0)


def _torch_dynamic(model, task, t0: float) -> _Variant:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

    def fn(*arrays):
        with torch.no_grad():
            return q(*(torch.from_numpy(a) for a in arrays)).numpy()

    return _fn_variant(fn, None, task=task, t0=t0, batch=EVAL_BATCH)


def _table(ctx, task, variants: dict, label: str, metric_names: list[str]) -> str:
    """Metric columns, latency ratio to ORT FP32 (interleaved medians) and size ratio."""
    load_before = ctx.wait_quiet()
    stats = ctx.ratio_medians({n: v.fn for n, v in variants.items()}, "ORT FP32",
                              repeats=5, runs=30)  # fmt: skip
    fp32_size = variants["ORT FP32"].size
    rows = []
    for name, v in variants.items():
        values = task.metric.all(v.outputs, task.eval.targets)
        rows.append([name, *[f"{values[m]:.4f}" for m in metric_names],
                     f"{stats['ratio'][name]:.2f}", "{:.2f}-{:.2f}".format(*stats["spread"][name]),
                     f"{stats['p50_ms'][name]:.2f}",
                     f"{v.size / fp32_size:.2f}" if v.size else "-", f"{v.quantize_s:.0f}"])
    note = _same_graphs(variants)
    note += (f"\n{label}: others' CPU use before timing {load_before or 0:.2f} cores, max during "
            f"{stats['others_cpu_cores']:.2f}; load average {os.getloadavg()[0]:.1f}; "
            f"{stats['repeats']} interleaved repeats.\n")
    return ctx.table(["variant", *metric_names, "latency / ORT FP32", "ratio spread", "p50 ms",
                      "size / FP32", "build s"], rows) + note  # fmt: skip


def _same_graphs(variants: dict) -> str:
    """A line naming the OpenVINO variants that compile to NNCF's kernels (or none)."""
    from edgeshrink.quant.openvino import compiled_graph

    nncf = variants.get("peer: NNCF + OpenVINO INT8")
    if nncf is None or nncf.compiled is None:
        return ""
    ref = compiled_graph(nncf.compiled)
    ours = {n: compiled_graph(v.compiled) for n, v in variants.items()
            if v.compiled is not None and v is not nncf}  # fmt: skip
    same = [n for n, g in ours.items() if g == ref]
    return (f"\nCompiled by OpenVINO's CPU plugin to the same kernels as NNCF's file ({sum(ref.values())} "
            f"runtime nodes, counted by kind x output precision): {', '.join(same) or 'none'}.\n")


def _fp32(ctx, task, key: str) -> tuple[Path, _Variant]:
    """FP32 ONNX with the exporter's own names: ORT's quantizer mis-handles the compacted
    ``t1a``-style names of edgeshrink's shipped files (its S8S8 output failed to load)."""
    t0 = time.perf_counter()
    axes = {name: {0: "batch"} for name in task.input_names}
    for name, extra in (task.dynamic_axes or {}).items():
        axes.setdefault(name, {}).update(extra)
    path = ctx.export_onnx(task.model, task.example_inputs(), ctx.work / f"{key}-fp32.onnx",
                           input_names=list(task.input_names), dynamic_axes=axes)  # fmt: skip
    return path, _ort_variant(path, task, t0)


def _peer(ctx, v: dict, name: str, build) -> None:
    """Add a peer's row; a peer that fails is logged and left out (the table still runs)."""
    t0 = time.perf_counter()
    try:
        v[name] = build(t0)
    except Exception as exc:
        ctx.log(f"{name} failed: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------ sections


def mobilenet(ctx) -> str:
    from edgeshrink.quant import OpenVinoInt8Config, QatConfig, StaticInt8Config
    from edgeshrink.task import load_task

    task = load_task("zoo:mobilenetv2-imagenet")
    fp32, base = _fp32(ctx, task, "mnv2")
    v = {"ORT FP32": base}
    for method in ("MinMax", "Percentile"):
        out = ctx.work / f"mnv2-ort-{method}.onnx"
        _peer(ctx, v, f"peer: ORT quantizer U8S8 {method}", lambda t0, m=method, o=out:
              _ort_variant(_ort_static(fp32, o, task, m), task, t0))  # fmt: skip
    _peer(ctx, v, "peer: NNCF + OpenVINO INT8",
          lambda t0: _fn_variant(*_nncf(fp32, task, ctx.work / "mnv2-nncf.xml"), t0=t0, task=task))
    ctx.log("mobilenet peers done")
    bc = {"bias_correction": True}
    ours = {
        "ours: static percentile": [StaticInt8Config(calibrator="percentile")],
        "ours: static mean min-max (NNCF's calibrator)": [
            StaticInt8Config(calibrator="mean_minmax")],
        "ours: static mse": [StaticInt8Config(calibrator="mse")],
        "ours: percentile + bias correction": [StaticInt8Config(calibrator="percentile", **bc)],
        "ours: mse + bias correction": [StaticInt8Config(calibrator="mse", **bc)],
        "ours: OpenVINO target (our QDQ, percentile + bias corr.)": [
            OpenVinoInt8Config(activations="uint8")],
        "ours: OpenVINO target, mixed u8/s8 activations": [
            OpenVinoInt8Config(activations="mixed")],
    }  # fmt: skip
    if os.environ.get("BENCH_QAT"):  # minutes on 2 busy cores: opt-in
        ours["ours: QAT 8/8, distillation 2 epochs"] = [QatConfig(epochs=2, lr=1e-5, distill=1.0)]
    for name, recipe in ours.items():
        try:
            v[name] = _ours(ctx, task, recipe, name.replace(" ", "_"))
        except Exception as exc:  # one failing variant must not lose the table
            ctx.log(f"{name} failed: {exc}")
        ctx.log(f"{name} done")
    table = _table(ctx, task, v, "MobileNetV2", ["top1_agreement", "top5_agreement", "mean_kl"])
    return table + _int8_pairs(v)


def _int8_pairs(variants: dict) -> str:
    """How often two INT8 files agree with *each other* on top-1: the noise floor of top-1
    agreement with FP32 on these near-tie crops (no ImageNet labels here, DATA.md)."""
    import statistics

    tops = {n: v.outputs.argmax(-1) for n, v in variants.items() if n != "ORT FP32"}
    names = list(tops)
    pairs = [100 * float((tops[a] == tops[b]).mean())
             for i, a in enumerate(names) for b in names[i + 1 :]]  # fmt: skip
    if not pairs:
        return ""
    return (f"\nTop-1 agreement of two INT8 rows with each other, over all {len(pairs)} pairs: "
            f"{min(pairs):.1f}-{max(pairs):.1f} %, median {statistics.median(pairs):.1f} %. "
            "FP32 agrees with itself on 100 % by definition, so no INT8 file can come within "
            "0.5 point of it on these crops; accuracy needs labels.\n")


def minilm(ctx) -> str:
    from edgeshrink.quant import (
        DynamicInt8Config,
        Int4WeightOnlyConfig,
        SmoothQuantConfig,
        StaticInt8Config,
    )
    from edgeshrink.quant.outliers import OUTLIER_PATTERN, OutlierSplitConfig
    from edgeshrink.quant.pertoken import PerTokenInt8Config
    from edgeshrink.quant.pretrained import narrowing_layers
    from edgeshrink.task import load_task

    task = load_task("zoo:minilm")
    fp32, base = _fp32(ctx, task, "minilm")
    v = {"ORT FP32": base}
    for pc in (False, True):
        out = ctx.work / f"minilm-dyn-{pc}.onnx"
        _peer(ctx, v, f"peer: ORT dynamic per-{'channel' if pc else 'tensor'}",
              lambda t0, p=pc, o=out: _ort_variant(_ort_dynamic(fp32, o, p), task, t0))
    _peer(ctx, v, "peer: torch dynamic (eager)", lambda t0: _torch_dynamic(task.model, task, t0))
    ctx.log("minilm peers done")
    mm = ("MatMul", "Gemm")
    ours = {
        "ours: dynamic per-channel": [DynamicInt8Config()],
        "ours: dynamic, FFN output dense FP32": [DynamicInt8Config(exclude=(r"\d\.output\.dense$",))],
        "ours: SmoothQuant 0.5 + dynamic": [SmoothQuantConfig(alpha=0.5), DynamicInt8Config()],
        "ours: SmoothQuant 0.5 + static percentile": [
            SmoothQuantConfig(alpha=0.5), StaticInt8Config(calibrator="percentile", ops=mm)],
        # per-token activation scales (QuantizeLinear axis=0 + MatMulIntegerToFloat)
        "ours: per-token, FFN down projections": [
            PerTokenInt8Config(layers=narrowing_layers(task.model))],
        "ours: per-token, FFN (up + down)": [
            PerTokenInt8Config(layers=(r"intermediate\.dense$", r"\d\.output\.dense$"))],
        "ours: per-token, all layers": [PerTokenInt8Config()],
        # LLM.int8()-style split of the outlier input channels (FP32 side MatMul)
        "ours: outlier split, FFN down + dynamic": [
            OutlierSplitConfig(layers="|".join(narrowing_layers(task.model))),
            DynamicInt8Config(exclude=(OUTLIER_PATTERN,))],
        "ours: outlier split (worst channel), all + dynamic": [
            OutlierSplitConfig(max_channels=1), DynamicInt8Config(exclude=(OUTLIER_PATTERN,))],
        "ours: per-token symmetric, all layers": [PerTokenInt8Config(symmetric=True)],
        # MatMulNBits with int8 activations per block (accuracy_level 4): faithful, not faster
        "ours: MatMulNBits 8-bit g32, int8 compute": [
            Int4WeightOnlyConfig(bits=8, group_size=32, accuracy_level=4)],
        "ours: MatMulNBits 8-bit g128, int8 compute": [
            Int4WeightOnlyConfig(bits=8, group_size=128, accuracy_level=4)],
        "ours: MatMulNBits 4-bit g128, int8 compute": [
            Int4WeightOnlyConfig(bits=4, group_size=128, accuracy_level=4)],
    }  # fmt: skip
    for name, recipe in ours.items():
        try:
            v[name] = _ours(ctx, task, recipe, name.replace(" ", "_"))
        except Exception as exc:
            ctx.log(f"{name} failed: {exc}")
        ctx.log(f"{name} done")
    return _table(ctx, task, v, "MiniLM", ["cosine", "min_cosine", "probe_accuracy"])


def onet(ctx) -> str:
    from edgeshrink.quant import OpenVinoInt8Config, StaticInt8Config
    from edgeshrink.task import load_task

    task = load_task("zoo:onet-faces")
    fp32, base = _fp32(ctx, task, "onet")
    v = {"ORT FP32": base}
    _peer(ctx, v, "peer: ORT quantizer U8S8 per-channel MinMax", lambda t0: _ort_variant(
        _ort_static(fp32, ctx.work / "onet-ort.onnx", task, "MinMax"), task, t0))  # fmt: skip
    _peer(ctx, v, "peer: NNCF + OpenVINO INT8",
          lambda t0: _fn_variant(*_nncf(fp32, task, ctx.work / "onet-nncf.xml"), t0=t0, task=task))
    for cal in ("minmax", "percentile", "mse"):
        v[f"ours: static {cal}"] = _ours(ctx, task, [StaticInt8Config(calibrator=cal)], f"o-{cal}")
    for cal in ("percentile", "mse"):
        v[f"ours: {cal} + bias correction"] = _ours(
            ctx, task, [StaticInt8Config(calibrator=cal, bias_correction=True)], f"o-{cal}-bc")
    if importlib.util.find_spec("openvino"):
        v["ours: OpenVINO target (our QDQ, percentile + bias corr.)"] = _ours(
            ctx, task, [OpenVinoInt8Config(activations="uint8")], "o-ov")
        v["ours: OpenVINO target, mixed u8/s8 activations"] = _ours(
            ctx, task, [OpenVinoInt8Config(activations="mixed")], "o-ov-mixed")
    return _table(ctx, task, v, "O-Net", ["accuracy", "roc_auc", "mean_abs_dp_face"])


SECTIONS = {"MobileNetV2 (ImageNet weights), 400 crops of 16 photos": mobilenet,
            "MiniLM, 500 fortunes quotes + probe, sequence 128": minilm,
            "O-Net, lfw_subset face vs non-face": onet}  # fmt: skip


def run(ctx) -> str:
    import torch

    torch.set_num_threads(2)
    only = os.environ.get("BENCH_PRETRAINED_ONLY", "")
    parts = ["Latency: batch 1, 2 threads, each variant's p50 over ORT FP32's in the same "
             "interleaved run, median of repeats. `build s`: quantization wall time.\n"]
    for title, fn in SECTIONS.items():
        if only and only not in fn.__name__:
            continue
        parts += [f"\n### {title}\n", fn(ctx)]
        ctx.log(f"{fn.__name__} done")
    return "\n".join(parts)
