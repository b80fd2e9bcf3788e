"""Deployed quantization: calibrators, INT8 vs FP32, and peers timed side by side.

(1) Calibration methods by accuracy on the zoo tasks, with how far each calibrator's
    activation scales are from min-max's (they must really differ).
(2) INT8 static PTQ against FP32 on every zoo task available (bar: within 0.5 point).
(3) INT8 vs FP32 latency (batch 1, 2 threads) and size in ONNX Runtime on a ResNet-18-sized
    (random weights) and the real MobileNetV2, with the peers in the same run: ORT's
    quantizer called directly (S8S8 default, U8S8), torch dynamic quantization, NNCF +
    OpenVINO. Accuracy of the peers on MobileNetV2: top-1 agreement with FP32.

Run alone: ``.venv/bin/python benchmarks/run.py --only quant``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TASKS = ("lenet5-digits", "lenet5-mnist", "mobilenetv2-imagenet")
CALIBRATORS = ("minmax", "percentile", "entropy", "mse")


class _Ctx:  # stand-in when run(None)
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bench-quant-"))
        self.quick = True
        spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
        mod = importlib.util.module_from_spec(spec)
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
    import torch

    with torch.no_grad():
        out = np.concatenate([task.model(*x).numpy() for x, _ in task.eval.batches(64)])
    return task.metric(out, task.eval.targets)


def calibration_table(ctx, tasks: dict) -> tuple[str, dict]:
    from edgeshrink.quant import StaticInt8Config, quantize

    rows, best = [], {}
    for name, task in tasks.items():
        if isinstance(task, Exception):
            rows.append([name, "-", "-", f"unavailable: {task}", "", "", ""])
            continue
        fp32 = _fp32_metric(task)
        base_scales = None
        for cal in CALIBRATORS:
            for pc in (True, False):
                t0 = time.perf_counter()
                art = quantize(task.model, StaticInt8Config(calibrator=cal, per_channel=pc),
                               task.calibration, input_names=task.input_names,
                               workdir=ctx.work, name=f"{name}-{cal}-{pc}")  # fmt: skip
                secs = time.perf_counter() - t0
                metric = _eval(task, art.path)
                scales = _scales(art.path)
                base_scales = scales if cal == "minmax" and pc else base_scales
                diff = float(np.mean(np.abs(np.log(scales / base_scales))))
                rows.append([name, cal, "channel" if pc else "tensor", f"{metric:.2f}",
                             f"{metric - fp32:+.2f}", f"{diff:.3f}", f"{secs:.1f}"])  # fmt: skip
                if name not in best or metric > best[name][1]:
                    best[name] = (f"{cal}/{'channel' if pc else 'tensor'}", metric, fp32, art.path)
        ctx.log(f"calibration {name} done")
    table = ctx.table(["task", "calibrator", "weights", "metric", "vs FP32", "mean abs log "
                       "scale ratio vs min-max", "quantize s"], rows)  # fmt: skip
    return table, best


def ptq_bar(ctx, best: dict) -> str:
    rows = [[n, c, f"{fp:.2f}", f"{m:.2f}", f"{fp - m:.2f}", "yes" if fp - m <= 0.5 else "NO"]
            for n, (c, m, fp, _) in best.items()]  # fmt: skip
    return ctx.table(["task", "best calibrator", "FP32", "INT8", "drop", "within 0.5"], rows)


# ------------------------------------------------------------------------------- peers


def _resnet18():
    spec = importlib.util.spec_from_file_location("bench_runtime_models", HERE / "bench_runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._resnet(64, (2, 2, 2, 2), classes=1000).eval()


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
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(fp32))
    q = nncf.quantize(model, nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]),
                      subset_size=len(calib))  # fmt: skip
    cfg = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
           "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
    return core.compile_model(q, "CPU", cfg), core.compile_model(model, "CPU", cfg), q


def _torch_dynamic(model):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def peers(ctx, tasks: dict) -> str:
    import torch

    from edgeshrink.data import Dataset
    from edgeshrink.export import export_onnx, ort_session, run_onnx
    from edgeshrink.quant import StaticInt8Config, quantize

    torch.set_num_threads(2)
    mnv2 = tasks.get("mobilenetv2-imagenet")
    models = {"resnet18 (random)": (_resnet18(), None)}
    if mnv2 is not None and not isinstance(mnv2, Exception):
        models["mobilenetv2 (ImageNet)"] = (mnv2.model, mnv2)
    rows = []
    for label, (model, task) in models.items():
        rng = np.random.default_rng(0)
        calib = (task.calibration.inputs[0][:64] if task else
                 rng.standard_normal((64, 3, 224, 224)).astype(np.float32))  # fmt: skip
        evalx = task.eval.inputs[0] if task else calib[:32]
        x1 = evalx[:1]
        key = label.split()[0]
        fp32 = export_onnx(model, (torch.from_numpy(x1),), ctx.work / f"{key}-fp32.onnx")
        files = {"ORT FP32": fp32}
        art = quantize(model, StaticInt8Config(calibrator="percentile", calibration_samples=64),
                       Dataset((calib,), np.zeros(len(calib))), workdir=ctx.work,
                       name=f"{key}-es")  # fmt: skip
        files["edgeshrink INT8 (U8S8, percentile)"] = art.path
        files["ORT direct S8S8 (default)"] = _ort_direct(fp32, ctx.work / f"{key}-s8.onnx", calib,
                                                         uint8=False)  # fmt: skip
        files["ORT direct U8S8"] = _ort_direct(fp32, ctx.work / f"{key}-u8.onnx", calib, uint8=True)
        fns, outs = {}, {}
        for name, path in files.items():
            sess = ort_session(path, 2)
            fns[name] = lambda s=sess, x=x1: s.run(None, {"input": x})
            outs[name] = np.concatenate([run_onnx(sess, (evalx[i:i + 16],))
                                         for i in range(0, len(evalx), 16)])  # fmt: skip
        sizes = {n: p.stat().st_size for n, p in files.items()}
        tdyn = _torch_dynamic(model)
        xt = torch.from_numpy(x1)
        fns["torch dynamic INT8 (eager)"] = lambda m=tdyn, x=xt: m(x)
        with torch.no_grad():
            outs["torch dynamic INT8 (eager)"] = tdyn(torch.from_numpy(evalx)).numpy()
        try:
            ov_q, ov_f, ov_model = _openvino(fp32, calib, 2)
            fns["OpenVINO FP32"] = lambda m=ov_f, x=x1: m(x)
            fns["NNCF + OpenVINO INT8"] = lambda m=ov_q, x=x1: m(x)
            outs["NNCF + OpenVINO INT8"] = np.concatenate(
                [ov_q(evalx[i:i + 1])[0] for i in range(len(evalx))])  # fmt: skip
            import openvino as ov

            ov.save_model(ov_model, str(ctx.work / f"{key}-ov.xml"))
            sizes["NNCF + OpenVINO INT8"] = (ctx.work / f"{key}-ov.bin").stat().st_size
        except ImportError as exc:
            ctx.log(f"openvino/nncf unavailable: {exc}")
        with torch.no_grad():
            ref = model(torch.from_numpy(evalx)).numpy()
        stats = ctx.ratio_medians(fns, "ORT FP32", repeats=5, runs=40)
        for name in fns:
            agree = (100 * float(np.mean(outs[name].argmax(1) == ref.argmax(1)))
                     if name in outs else float("nan"))  # fmt: skip
            size = sizes.get(name)
            rows.append([label, name, f"{stats['p50_ms'][name]:.2f}", f"{stats['ratio'][name]:.2f}",
                         "{:.2f}-{:.2f}".format(*stats["spread"][name]),
                         f"{size / sizes['ORT FP32']:.2f}" if size else "-", f"{agree:.1f}"])
        rows.append([label, f"(others' CPU use, cores: {stats['others_cpu_cores']:.2f})",
                     "", "", "", "", ""])  # fmt: skip
        ctx.log(f"peers {label} done")
    return ctx.table(["model", "variant", "p50 ms", "latency / ORT FP32", "ratio spread",
                      "size / FP32", "top-1 agreement with FP32 %"], rows)  # fmt: skip


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
        "\n### INT8 vs FP32 and peers: batch 1, 2 threads, interleaved, medians of 5 repeats\n",
        peers(ctx, tasks),
    ]
    return "\n".join(parts)
