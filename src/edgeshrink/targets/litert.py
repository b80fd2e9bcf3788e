"""LiteRT target: ``.tflite`` files built from the PyTorch model with litert-torch and run
in LiteRT's interpreter (XNNPACK).

Precisions (:class:`~edgeshrink.targets.configs.LiteRTConfig`): ``fp32``; ``fp16`` (weights
stored in fp16, run in fp32); ``int8-dynamic`` (int8 weights, activations quantized per
batch); ``int8`` (full integer: int8 activations calibrated on the task's data, per-channel
symmetric int8 weights; ``io="int8"``: every layer integer and int8 tensors at the
interface, TFLM's contract; ``io="float"``: float in, and the output layer writes float
logits from int8 inputs and weights).

Full integer goes through PT2E (``prepare_pt2e`` / ``convert_pt2e``) with litert-torch's
``PT2EQuantizer`` annotations, but with our activation calibrators
(:mod:`edgeshrink.quant.calibrate`) in place of its HistogramObserver, and the model's
input and output kept at their full observed range (a calibrator that clips the logits
costs top-1: see :func:`edgeshrink.quant.ort.float_outputs`).

Example:
    >>> art = apply_recipe([LiteRTConfig(precision="int8", micro=True)], ctx)
    >>> get_target("litert").load(art.path)(x)
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgeshrink.targets.base import Target, TargetError
from edgeshrink.targets.configs import LiteRTConfig
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["LiteRTTarget", "TARGET", "build_tflite", "converter_missing"]

_CONVERTER_MISSING = ("litert-torch is not installed, so no .tflite can be built here: "
                      "pip install edgeshrink[litert].")


def converter_missing() -> str | None:
    """``None`` when litert-torch imports, else one sentence saying what to install."""
    try:
        with _quiet():
            import litert_torch  # noqa: F401
    except ImportError:
        return _CONVERTER_MISSING
    return None


@contextlib.contextmanager
def _quiet():
    """Silence litert-torch's progress lines and the converter's C++ logging (fd 1 and 2)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    saved = []
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM117
                yield
    finally:
        for fd, copy_fd in saved:
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


# ---------------------------------------------------------------------------- calibration

FLOAT_OUTPUT = True
PERCENTILE = 99.99  # what the ``percentile`` calibrator keeps (as StaticInt8Config's default)


def _observer_class():
    """A MinMaxObserver that also keeps a histogram sample, so that any of our calibrators
    (percentile, entropy, mse) can choose the range it hands to PT2E."""
    import torch
    from torchao.quantization.pt2e.observer import MinMaxObserver

    from edgeshrink.quant.calibrate import TensorStats, calibrate_range

    class CalibratedObserver(MinMaxObserver):
        per_call = 1 << 15  # values kept per forward call for the histogram

        def __init__(self, method: str = "minmax", **kwargs) -> None:
            super().__init__(**kwargs)
            self.method = method
            self._kept: list[np.ndarray] = []
            self._rng = np.random.default_rng(0)
            self._per_sample = TensorStats.empty(0.0, 0.0, 1)

        def forward(self, x_orig):
            out = super().forward(x_orig)
            if self.method != "minmax" and x_orig.numel():
                x = x_orig.detach().float().cpu().numpy()
                flat = x.reshape(-1)
                if flat.size > self.per_call:
                    flat = flat[self._rng.integers(0, flat.size, self.per_call)]
                self._kept.append(flat.copy())
                if x.ndim > 1:
                    self._per_sample.add_samples(x)
            return out

        def calculate_qparams(self):
            if self.method == "minmax" or not self._kept:
                return super().calculate_qparams()
            lo, hi = float(self.min_val), float(self.max_val)
            stats = TensorStats.empty(lo, hi)
            stats.lo, stats.hi = lo, hi
            stats.add(np.concatenate(self._kept))
            p = self._per_sample
            stats.samples, stats.sample_lo_sum, stats.sample_hi_sum = (
                p.samples, p.sample_lo_sum, p.sample_hi_sum)
            a, b = calibrate_range(stats, self.method, percentile=PERCENTILE)
            a, b = max(a, min(lo, 0.0)), min(b, max(hi, 0.0))
            return self._calculate_qparams(torch.tensor(a), torch.tensor(b))

    return CalibratedObserver


def _quantizer(calibrator: str, *, float_output: bool = False):
    """litert-torch's PT2EQuantizer, per-channel symmetric int8 weights, with activations
    observed by ``calibrator`` (``histogram``: litert-torch's own HistogramObserver)."""
    import dataclasses

    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True)
    if calibrator == "histogram":
        return PT2EQuantizer().set_global(config)
    ctr = _observer_class().with_args(method=calibrator, eps=2**-12)
    spec = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=ctr)
    config = dataclasses.replace(config, input_activation=spec, output_activation=spec)

    class Quantizer(PT2EQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            _observe_after_relu6(model, spec)
            if float_output:
                _float_output(model)
            return model

    return Quantizer().set_global(config)


def _float_output(model) -> None:
    """Leave the model's output in float: its last Conv/Linear takes int8 but writes float
    logits, instead of rounding them to 256 levels (on MobileNetV2's calibrated range, a
    step of 0.12 that alone flips 1.25 % of top-1 answers)."""
    for node in model.graph.nodes:
        if node.op == "output":
            for prev in _flat(node.args):
                ann = prev.meta.get("quantization_annotation")
                if ann is not None:
                    ann.output_qspec = None


def _observe_after_relu6(model, spec) -> None:
    """Quantize a Conv/Linear + ReLU6 pair once, after the clamp.

    litert-torch's quantizer fuses Conv+ReLU but gives ReLU6 (``hardtanh(0, 6)``) the
    observer of the Conv's output, so the int8 grid spans the pre-activation's range (tens,
    both signs) while only [0, 6] survives the clamp. Observed after the clamp instead, the
    converter still fuses the pair into one int8 CONV_2D with a RELU6 activation.
    """
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    relu6 = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    producers = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default,
                 torch.ops.aten.conv1d.default)
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in relu6:
            continue
        lo, hi = (list(node.args[1:3]) + [-1.0, 1.0][len(node.args) - 1:])[:2]
        prev = node.args[0]
        ann = getattr(prev, "meta", {}).get("quantization_annotation")
        if ((lo, hi) != (0.0, 6.0) or ann is None or ann.output_qspec is None
                or prev.target not in producers or len(prev.users) != 1):
            continue
        ann.output_qspec = None
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={}, output_qspec=spec, _annotated=True)


def _keep_io_full_range(prepared) -> None:
    """The observers of the graph's inputs and outputs use min-max whatever the calibrator."""
    graph = prepared.graph
    ends = [n for n in graph.nodes if n.op == "placeholder"]
    ends += [a for n in graph.nodes if n.op == "output" for a in _flat(n.args)]
    for node in ends:
        for cand in [node, *node.users]:
            mod = getattr(prepared, str(cand.target), None) if cand.op == "call_module" else None
            if mod is not None and hasattr(mod, "method"):
                mod.method = "minmax"


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        elif hasattr(a, "op"):
            yield a


def _export_for_calibration(model, ctx: TransformContext):
    """The model exported for PT2E with a dynamic batch (calibration runs in batches), or
    at batch 1 when the model fixes its batch."""
    import torch

    x2 = ctx.task.example_inputs(2)
    if len(ctx.task.eval) >= 2:
        dims = tuple({0: torch.export.Dim("batch", min=1, max=1 << 16)} for _ in x2)
        with contextlib.suppress(Exception):
            return torch.export.export(model, x2, dynamic_shapes=dims).module(), 64
    return torch.export.export(model, ctx.task.example_inputs()).module(), 1


def _full_int8(model, ctx: TransformContext, cfg: LiteRTConfig):
    import torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeshrink.quant.ort import check_calibration

    data = ctx.task.calibration
    check_calibration(data, ctx)
    quantizer = _quantizer(cfg.calibrator, float_output=FLOAT_OUTPUT and cfg.io == "float")
    exported, batch = _export_for_calibration(model, ctx)
    prepared = prepare_pt2e(exported, quantizer)
    _keep_io_full_range(prepared)
    with torch.no_grad():
        for xs in data.head(cfg.calibration_samples).numpy_batches(batch):
            prepared(*(torch.from_numpy(a) for a in xs))
    converted = convert_pt2e(prepared, fold_quantize=False)
    return converted, QuantConfig(pt2e_quantizer=quantizer)


def _dynamic_int8(model, ctx: TransformContext):
    import torch
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    x = ctx.task.example_inputs()
    prepared = prepare_pt2e(torch.export.export(model, x).module(), quantizer)
    with torch.no_grad():
        prepared(*x)
    return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


def _fp16_weights(data: bytes) -> bytes:
    """Float weights stored as fp16 with a DEQUANTIZE op in front (the TFLite converter's
    float16 scheme), through ai-edge-quantizer's float-casting recipe."""
    from ai_edge_quantizer import quantizer as aeq
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED,
                              num_bits=16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    q = aeq.Quantizer(bytearray(data), rm.get_quantization_recipe())
    return bytes(q.quantize().quantized_model)


def _int8_weights_of_float_ops(data: bytes) -> bytes:
    """The float Conv/FullyConnected left at the output (see :func:`_float_output`) stores
    int8 per-channel weights with a DEQUANTIZE op in front, as the int8 layers do, rather
    than fp32 weights (MobileNetV2's classifier alone would add 3.8 MB)."""
    from ai_edge_quantizer import quantizer as aeq
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName

    rm = recipe_manager.RecipeManager()
    for op in (TFLOperationName.FULLY_CONNECTED, TFLOperationName.CONV_2D):
        rm.add_weight_only_config(regex=".*", operation_name=op, num_bits=8)
    q = aeq.Quantizer(bytearray(data), rm.get_quantization_recipe())
    return bytes(q.quantize().quantized_model)


_OP_RE = re.compile(r"(aten[.:]+[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?|torch\.ops\.[\w.]+)")


def _unlowered_op(model, x) -> str | None:
    """The first aten op of ``model`` (after litert-torch's decompositions) that litert-torch
    has no lowering for, or ``None``: for failures whose message names no op."""
    import torch
    from litert_torch import fx_infra
    from litert_torch.backend.lowerings import registry

    with contextlib.suppress(Exception):
        ep = fx_infra.safe_run_decompositions(torch.export.export(model, x),
                                              fx_infra.decomp.pre_lower_decomp(),
                                              can_skip=False)  # fmt: skip
        for node in ep.graph.nodes:
            if (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
                    and registry.lookup(node.target) is None):
                return str(node.target)
    return None


def _conversion_error(exc: Exception, model=None, x=None) -> TargetError:
    """One sentence naming the op litert-torch could not lower (from its message, or found
    by looking each op up in its lowering registry)."""
    text = f"{type(exc).__name__}: {exc}"
    m = _OP_RE.search(text)
    op = m.group(1) if m else (_unlowered_op(model, x) if model is not None else None)
    what = f"the op {op}" if op else f"this model ({' '.join(text.split())[:160]})"
    return TargetError(f"LiteRT (litert-torch) cannot convert {what}.")


def build_tflite(model, ctx: TransformContext, cfg: LiteRTConfig) -> tuple[bytes, dict]:
    """The ``.tflite`` bytes for ``cfg`` and notes on what was built."""
    import torch

    why = converter_missing()
    if why:
        raise TargetError(why)
    import litert_torch

    model = source = copy.deepcopy(model).eval()
    x = ctx.task.example_inputs()
    notes = {"format": "tflite", "precision": cfg.precision, "batch": int(x[0].shape[0]),
             "converter": "litert-torch"}
    try:
        with _quiet(), torch.no_grad():
            quant = None
            if cfg.precision == "int8":
                model, quant = _full_int8(model, ctx, cfg)
            elif cfg.precision == "int8-dynamic":
                model, quant = _dynamic_int8(model, ctx)
            data = bytes(litert_torch.convert(model, x, quant_config=quant).model_content())
            if cfg.precision == "fp16":
                data = _fp16_weights(data)

    except TargetError:
        raise
    except Exception as exc:  # litert-torch raises many kinds: say which op, in one sentence
        raise _conversion_error(exc, source, x) from exc
    if cfg.precision == "int8":
        from edgeshrink.targets.tflite_file import float_io

        if cfg.io == "float":
            data = float_io(data)  # before: the quantizer may store weights past the buffer
            if FLOAT_OUTPUT:
                with _quiet(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "already partially quantized": we know
                    data = _int8_weights_of_float_ops(data)
                notes["output_layer"] = "float compute, int8 weights (float logits)"
        notes.update(scheme="full integer: int8 activations (per-tensor, asymmetric), "
                            "int8 weights (per-channel, symmetric)",
                     calibrator=cfg.calibrator, io=cfg.io,
                     calibration_samples=min(cfg.calibration_samples,
                                             len(ctx.task.calibration)))
    elif cfg.precision == "int8-dynamic":
        notes.update(scheme="int8 weights (per-channel), activations quantized per batch",
                     io="float")
    else:
        notes.update(io="float")
    return data, notes


@transform(LiteRTConfig)
def _build(cfg: LiteRTConfig, model, ctx: TransformContext) -> Artifact:
    from edgeshrink.targets import tflite_file as tf

    data, notes = build_tflite(model, ctx, cfg)
    if cfg.micro:
        ops = tf.op_names(data)
        tf.check_micro_ops(ops)
        notes["ops"] = sorted(set(ops))
        notes["arena_bytes"] = tf.arena_bytes(data)
    path = ctx.artifact_path(".tflite")
    tmp = path.with_suffix(".tflite.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    if cfg.micro:
        notes["c_header"] = tf.write_c_header(path).name
    precision = {"int8-dynamic": "int8"}.get(cfg.precision, cfg.precision)
    return Artifact(path=path, model=model, precision=precision, runtime="litert", notes=notes)


# ---------------------------------------------------------------------------- the target

class LiteRTTarget(Target):
    name = "litert"
    label = "LiteRT (.tflite)"
    suffix = ".tflite"
    extra = "litert"
    precisions = frozenset({"fp32", "fp16", "int8"})

    def missing(self) -> str | None:
        from edgeshrink.bench.rt_litert import MISSING

        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return MISSING
        return None

    def load(self, path: Path, threads: int = 1):
        """Float inputs in, the first output as float out: int8 interfaces are quantized
        and dequantized with the tensors' own scale and zero point."""
        from edgeshrink.bench import rt_litert as rt

        self.require()
        sess = rt.open_session(path, threads)
        ins, out = sess.get_inputs(), sess.get_outputs()[0]

        def run(*xs: np.ndarray) -> np.ndarray:
            feeds = {a.name: rt.quantize(x, a) for a, x in zip(ins, xs, strict=True)}
            return rt.dequantize(sess.run([out.name], feeds)[0], out)

        return run

    def shipped_files(self, art) -> list[Path]:
        files = [Path(art.path)]
        header = art.notes.get("c_header")
        if header:
            files.append(Path(art.path).with_name(header))
        return files

    def loading_code(self, art, *, file_name: str) -> str:
        py = (
            "import numpy as np\n"
            "from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert\n\n"
            f'it = Interpreter(model_path="{file_name}", num_threads=2)\n'
            "it.allocate_tensors()\n"
            "inp, out = it.get_input_details()[0], it.get_output_details()[0]\n"
            'x = np.zeros(inp["shape"], np.float32)  # your input, batch 1\n'
            'scale, zero = inp["quantization"]\n'
            'if inp["dtype"] == np.int8:  # int8 interface: quantize the input yourself\n'
            "    x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)\n"
            'it.set_tensor(inp["index"], x)\n'
            "it.invoke()\n"
            'y = it.get_tensor(out["index"])\n'
            'scale, zero = out["quantization"]\n'
            'if out["dtype"] == np.int8:\n'
            "    y = (y.astype(np.float32) - zero) * scale\n"
        )
        header = art.notes.get("c_header")
        if not header:
            return py
        from edgeshrink.targets.tflite_file import c_identifier

        name = c_identifier(Path(header).stem)
        arena = int(art.notes.get("arena_bytes", 16384))
        arena = -(-arena * 5 // 4 // 16) * 16  # a quarter above the estimate
        ops = art.notes.get("ops", [])
        adds = "\n".join(f"  resolver.Add{_camel(op)}();" for op in ops)
        cc = (
            f'#include "{header}"\n'
            '#include "tensorflow/lite/micro/micro_interpreter.h"\n'
            '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
            f"constexpr int kArenaSize = {arena};  // estimate {art.notes.get('arena_bytes')}"
            " B + 25 %\n"
            "alignas(16) static uint8_t arena[kArenaSize];\n\n"
            "int run_model(const int8_t* input, int8_t* output) {\n"
            f"  const tflite::Model* model = tflite::GetModel({name}_tflite);\n"
            f"  static tflite::MicroMutableOpResolver<{max(len(ops), 1)}> resolver;\n"
            f"{adds}\n"
            "  tflite::MicroInterpreter interp(model, resolver, arena, kArenaSize);\n"
            "  if (interp.AllocateTensors() != kTfLiteOk) return -1;\n"
            "  TfLiteTensor* in = interp.input(0);\n"
            "  memcpy(in->data.int8, input, in->bytes);  // int8: see in->params.scale\n"
            "  if (interp.Invoke() != kTfLiteOk) return -1;\n"
            "  TfLiteTensor* out = interp.output(0);\n"
            "  memcpy(output, out->data.int8, out->bytes);\n"
            "  return 0;\n}\n"
        )
        return f"Python (LiteRT):\n\n{py}\nC++ (TensorFlow Lite Micro):\n\n{cc}"


_CAMEL = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D",
          "MAX_POOL_2D": "MaxPool2D", "AVERAGE_POOL_2D": "AveragePool2D",
          "L2_POOL_2D": "L2Pool2D", "TRANSPOSE_CONV": "TransposeConv", "RELU6": "Relu6",
          "PADV2": "PadV2", "ADD_N": "AddN", "SPLIT_V": "SplitV",
          "BATCH_TO_SPACE_ND": "BatchToSpaceNd", "SPACE_TO_BATCH_ND": "SpaceToBatchNd",
          "GATHER_ND": "GatherNd", "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
          "SVDF": "Svdf", "L2_NORMALIZATION": "L2Normalization"}


def _camel(op: str) -> str:
    """TFLM's ``MicroMutableOpResolver::AddXxx`` name for a builtin op."""
    return _CAMEL.get(op) or "".join(p.capitalize() for p in op.split("_"))


TARGET = LiteRTTarget()
