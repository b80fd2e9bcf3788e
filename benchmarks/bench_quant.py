"""Deployed quantization: calibrators, INT8 vs FP32, and peers timed side by side.

(1) Calibration methods by accuracy on the zoo tasks, with how far each calibrator's
    activation scales are from min-max's (they must really differ).
(2) INT8 static PTQ against FP32 on every zoo task available (bar: within 0.5 point).
(3) INT8 vs FP32 latency (batch 1, 2 threads) and size on zoo:resnet18-imagenet-random (as
    initialised, and with trained-like BatchNorm so that its folded convs carry biases) and
    the real MobileNetV2, with the peers in the same run: ORT's quantizer called directly
    (S8S8 default, U8S8), torch dynamic quantization, NNCF + OpenVINO INT8, OpenVINO FP32
    (forced f32), and edgeshrink's two INT8 targets (ORT U8S8 QDQ with the best calibrator;
    OpenVINO compiling our QDQ file, via OpenVinoInt8Config). Accuracy: top-1 agreement and KL against FP32.

Run alone: ``.venv/bin/python benchmarks/run.py --only quant``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TASKS = ("lenet5-digits", "lenet5-mnist", "lenet300-mnist", "resnet20-mnist", "vit-mnist",
         "onet-faces", "mobilenetv2-imagenet")
CALIBRATORS = ("minmax", "mean_minmax", "percentile", "entropy", "mse")
# (calibrator, bias correction): every calibrator plain, the two best with bias correction
VARIANTS = (*((c, False) for c in CALIBRATORS), ("percentile", True), ("mse", True))


class _Ctx:  # stand-in when run(None)
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bench-quant-"))
        self.quick = True
        spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_run"] = mod  # dataclasses look their module up while it loads
        spec.loader.exec_module(mod)
        self._ctx = mod.Ctx(work=self.work, quick=True, threads=2)

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def _tasks() -> dict:
    from edgeshrink.task import load_task
    from edgeshrink.zoo import available

    out = {}
    for name in TASKS:
        if name in available():
            try:
                out[name] = load_task(f"zoo:{name}")
            except Exception as exc:  # optional package missing: the table says so
                out[name] = exc
    return out


def _eval(task, path) -> float:
    from edgeshrink.export import ort_session, run_onnx

    sess = ort_session(path, 2)
    out = np.concatenate([run_onnx(sess, b) for b in task.eval.numpy_batches(64)])
    return task.metric(out, task.eval.targets)


def _scales(path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return np.array([float(inits[n.input[1]]) for n in m.graph.node
                     if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1])  # fmt: skip


def _fp32_metric(task) -> float:
    from edgeshrink.measure.model_stats import torch_outputs

    return task.metric(torch_outputs(task.model.eval(), task.eval, 64), task.eval.targets)


def calibration_table(ctx, tasks: dict) -> tuple[str, dict]:
    from edgeshrink.quant import StaticInt8Config, quantize

    rows, best = [], {}
    for name, task in tasks.items():
        if isinstance(task, Exception):
            rows.append([name, "-", "-", f"unavailable: {task}", "", "", ""])
            continue
        fp32 = _fp32_metric(task)
        base_scales = None
        for cal, bc in VARIANTS:
            for pc in (True, False):
                cfg = StaticInt8Config(calibrator=cal, per_channel=pc, bias_correction=bc)
                label = f"{cal} + bias corr." if bc else cal
                t0 = time.perf_counter()
                art = quantize(task.model, cfg, task.calibration, input_names=task.input_names,
                               workdir=ctx.work, name=f"{name}-{cal}-{bc}-{pc}")  # fmt: skip
                secs = time.perf_counter() - t0
                metric = _eval(task, art.path)
                scales = _scales(art.path)
                base_scales = scales if cal == "minmax" and pc else base_scales
                diff = float(np.mean(np.abs(np.log(scales / base_scales))))
                rows.append([name, label, "channel" if pc else "tensor", f"{metric:.2f}",
                             f"{metric - fp32:+.2f}", f"{diff:.3f}", f"{secs:.1f}"])  # fmt: skip
                if name not in best or metric > best[name][1]:
                    best[name] = (f"{label}/{'channel' if pc else 'tensor'}", metric, fp32, cfg)
        ctx.log(f"calibration {name} done")
    table = ctx.table(["task", "calibrator", "weights", "metric", "vs FP32", "mean abs log "
                       "scale ratio vs min-max", "quantize s"], rows)  # fmt: skip
    return table, best


def ptq_bar(ctx, best: dict) -> str:
    rows = [[n, c, f"{fp:.2f}", f"{m:.2f}", f"{fp - m:.2f}", "yes" if fp - m <= 0.5 else "NO"]
            for n, (c, m, fp, _) in best.items()]  # fmt: skip
    return ctx.table(["task", "best calibrator", "FP32", "INT8", "drop", "within 0.5"], rows)


# ------------------------------------------------------------------------------- peers


def _ort_direct(fp32: Path, out: Path, calib: np.ndarray, *, uint8: bool) -> Path:
    from onnxruntime.quantization import QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader:
        def __init__(self):
            self.it = iter(calib[i : i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    kwargs = {"activation_type": QuantType.QUInt8, "per_channel": True} if uint8 else {}
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(str(pre), str(out), Reader(), **kwargs)
    return out


def _openvino(fp32: Path, calib: np.ndarray, threads: int):
    """(OpenVINO's compiled FP32 model, NNCF's INT8 OpenVINO model) of ``fp32``."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(fp32))
    q = nncf.quantize(model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]),
                      subset_size=len(calib))  # fmt: skip
    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
           "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    return core.compile_model(model, "CPU", cfg), q


def _torch_dynamic(model):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _agreement(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement (%) and mean KL(FP32 || variant) of logits."""
    from edgeshrink.zoo.tasks_pretrained import mean_kl, top1_agreement

    return top1_agreement(out, ref), mean_kl(out, ref)


def _variants(ctx, key: str, model, task, calib: np.ndarray, best_cfg) -> tuple[dict, dict]:
    """``{name: (callable on one image, outputs on eval, size bytes)}`` for one model, and
    the compiled graphs (:func:`compiled_graph`) of NNCF's and our OpenVINO files."""
    import torch

    from edgeshrink.data import Dataset
    from edgeshrink.export import ort_session, run_onnx
    from edgeshrink.quant import OpenVinoInt8Config, quantize
    from edgeshrink.quant.openvino import compile_openvino, compiled_graph
    from edgeshrink.transforms import TransformContext, apply_recipe

    evalx = task.eval.inputs[0]
    x1 = evalx[:1]
    # the exporter's own names: ORT's quantizer wrote an unloadable S8S8 file from the
    # compacted (t1a-style) names of edgeshrink's shipped files
    fp32 = ctx.export_onnx(model, (torch.from_numpy(x1),), ctx.work / f"{key}-fp32.onnx",
                           dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    data = Dataset((calib,), np.zeros(len(calib)))
    files = {"ORT FP32": fp32}
    cfg = dataclasses.replace(best_cfg, calibration_samples=len(calib))
    label = cfg.calibrator + (" + bias corr." if cfg.bias_correction else "")
    files[f"edgeshrink INT8 ORT (U8S8, {label})"] = quantize(
        model, cfg, data, workdir=ctx.work, name=f"{key}-es").path  # fmt: skip
    files["ORT quantizer S8S8 (default)"] = _ort_direct(fp32, ctx.work / f"{key}-s8.onnx", calib,
                                                        uint8=False)  # fmt: skip
    files["ORT quantizer U8S8"] = _ort_direct(fp32, ctx.work / f"{key}-u8.onnx", calib, uint8=True)
    out = {}
    for name, path in files.items():
        sess = ort_session(path, 2)
        evals = np.concatenate([run_onnx(sess, (evalx[i : i + 32],))
                                for i in range(0, len(evalx), 32)])  # fmt: skip
        out[name] = (lambda s=sess: s.run(None, {"input": x1}), evals, path.stat().st_size)
    tdyn = _torch_dynamic(model)
    xt = torch.from_numpy(x1)
    with torch.no_grad():
        out["torch dynamic INT8 (eager)"] = (lambda: tdyn(xt), tdyn(torch.from_numpy(evalx)).numpy(),
                                             None)  # fmt: skip
    try:
        ov_f, ov_model = _openvino(fp32, calib, 2)
    except ImportError as exc:
        ctx.log(f"openvino/nncf unavailable: {exc}")
        return out, {}
    import openvino as ov

    ov.save_model(ov_model, str(ctx.work / f"{key}-ov.xml"))
    ov_size = (ctx.work / f"{key}-ov.bin").stat().st_size
    out["OpenVINO FP32 (forced f32)"] = (lambda: ov_f(x1), None, None)
    # every OpenVINO INT8 model is called the same way (edgeshrink's compile_openvino)
    nncf_run = compile_openvino(ov_model, 2)
    ov_out = np.concatenate([nncf_run(evalx[i : i + 1]) for i in range(len(evalx))])
    out["NNCF + OpenVINO INT8"] = (lambda: nncf_run(x1), ov_out, ov_size)
    graphs = {"NNCF": compiled_graph(nncf_run)}
    qtask = type(task)(task.name, model, None, data, task.eval, input_names=task.input_names)
    ov_cfg = OpenVinoInt8Config(calibrator=cfg.calibrator, bias_correction=cfg.bias_correction,
                                calibration_samples=len(calib))  # fmt: skip
    for acts in ("uint8", "mixed"):
        ov_cfg = dataclasses.replace(ov_cfg, activations=acts)
        art = apply_recipe([ov_cfg], TransformContext(task=qtask, workdir=ctx.work,
                                                      name=f"{key}-es-ov-{acts}"))  # fmt: skip
        es_out = np.concatenate([art.simulate(evalx[i : i + 1]) for i in range(len(evalx))])
        out[f"edgeshrink INT8 OpenVINO target (our QDQ, {acts} activations, {label})"] = (
            lambda f=art.simulate: f(x1), es_out, art.notes["ir_bytes"])  # fmt: skip
        graphs[acts] = compiled_graph(art.simulate)
    return out, graphs


def _trained_like_batchnorm(task):
    """The task with seeded BatchNorm scales, shifts and statistics in a copy of its model.

    At PyTorch's initialisation a BatchNorm folds into its conv with a bias of exactly zero,
    and OpenVINO then drops the bias add: NNCF's file of the random ResNet-18 had no bias
    at all, ours (bias correction makes them non-zero) had 20, a graph no trained network
    gives. Here every conv carries a bias, as in a trained model.
    """
    import copy

    import torch

    model = copy.deepcopy(task.model)
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = 0.5 + torch.rand(c, generator=gen)
            m.bias.data = 0.2 * torch.randn(c, generator=gen)
            m.running_mean = 0.2 * torch.randn(c, generator=gen)
            m.running_var = 0.5 + torch.rand(c, generator=gen)
    return dataclasses.replace(task, model=model)


def peers(ctx, tasks: dict, best: dict) -> str:
    import torch

    from edgeshrink.quant import StaticInt8Config
    from edgeshrink.task import load_task

    torch.set_num_threads(2)
    resnet = load_task("zoo:resnet18-imagenet-random")
    models = {"resnet18 (random weights)": resnet,
              "resnet18-bn (random weights, trained-like BatchNorm)": _trained_like_batchnorm(resnet)}
    mnv2 = tasks.get("mobilenetv2-imagenet")
    if mnv2 is not None and not isinstance(mnv2, Exception):
        models["mobilenetv2 (ImageNet)"] = mnv2
    rows = []
    for label, task in models.items():
        key = label.split()[0]
        calib = task.calibration.inputs[0][:64]
        best_cfg = best.get("mobilenetv2-imagenet", (None, 0, 0, None))[3] or StaticInt8Config(
            calibrator="percentile", bias_correction=True)
        variants, graphs = _variants(ctx, key, task.model, task, calib, best_cfg)
        with torch.no_grad():
            ref = task.model(torch.from_numpy(task.eval.inputs[0])).numpy()
        fns = {n: v[0] for n, v in variants.items()}
        load_before = ctx.wait_quiet()
        stats = ctx.ratio_medians(fns, "ORT FP32", repeats=15, runs=40)
        fp32_size = variants["ORT FP32"][2]
        for name, (_, evals, size) in variants.items():
            agree, kl = _agreement(evals, ref) if evals is not None else (float("nan"),) * 2
            rows.append([label, name, f"{stats['p50_ms'][name]:.2f}", f"{stats['ratio'][name]:.2f}",
                         "{:.2f}-{:.2f}".format(*stats["spread"][name]),
                         f"{size / fp32_size:.2f}" if size else "-", f"{agree:.1f}", f"{kl:.4f}"])
        for acts, graph in graphs.items():
            if acts != "NNCF":
                same = "the same as" if graph == graphs["NNCF"] else "not the same as"
                rows.append([label, f"(compiled graph of ours, {acts}: {sum(graph.values())} nodes, "
                             f"{same} NNCF's {sum(graphs['NNCF'].values())} by kind x precision)",
                             "", "", "", "", "", ""])  # fmt: skip
        rows.append([label, f"(others' CPU use, cores: before {load_before or 0:.2f}, max during "
                     f"{stats['others_cpu_cores']:.2f}; load avg {os.getloadavg()[0]:.1f})",
                     "", "", "", "", "", ""])  # fmt: skip
        ctx.log(f"peers {label} done")
    return ctx.table(["model", "variant", "p50 ms", "latency / ORT FP32", "ratio spread",
                      "size / FP32", "top-1 agreement %", "mean KL"], rows)  # fmt: skip


PEERS_NOTE = """
`resnet18-bn`: the same random ResNet-18 with seeded BatchNorm scales, shifts and statistics.
At PyTorch's initialisation every BatchNorm folds into its conv with a bias of exactly zero,
and OpenVINO drops a zero bias add: NNCF's file then compiles to 59 runtime nodes, while ours,
whose biases bias correction made non-zero, compiles to 119 (20 bias reshapes and their
constants). A trained network has biases, and there the two compile to the same kernels.
Our OpenVINO target moves each quantizer that ORT's QDQ puts after a MaxPool or
Flatten/Reshape above it (exact), so that it fuses into the convolution before it, as in
NNCF's placement (`quant.openvino.hoist_quantizers`). "Compiled graph": runtime nodes of
OpenVINO's CPU plugin counted by kind and output precision; when they are the same, a
latency difference between the two files is noise.
"""


def run(ctx) -> str:
    import torch

    ctx = ctx or _Ctx()
    torch.set_num_threads(2)
    tasks = _tasks()
    cal, best = calibration_table(ctx, tasks)
    parts = [
        "### Calibration methods (INT8 static QDQ, U8S8, ONNX Runtime)\n",
        "Scale ratio: mean |log(scale / min-max per-channel scale)| over activation "
        "quantizers; 0 means identical ranges.\n",
        cal,
        "\n### INT8 static PTQ vs FP32 (best calibrator per task)\n",
        ptq_bar(ctx, best),
        "\n### INT8 vs FP32 and peers: batch 1, 2 threads, interleaved, medians of 15 repeats\n",
        peers(ctx, tasks, best),
        PEERS_NOTE,
    ]
    return "\n".join(parts)
