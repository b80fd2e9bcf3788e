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
import re
import warnings
from pathlib import Path

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.results import atomic_write_bytes
from edgeshrink.targets import litert_quant as lq
from edgeshrink.targets.base import Target, TargetError
from edgeshrink.targets.configs import LiteRTConfig
from edgeshrink.targets.litert_quant import quiet as _quiet
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
                model, quant = lq.full_int8(model, ctx, cfg)
            elif cfg.precision == "int8-dynamic":
                model, quant = lq.dynamic_int8(model, ctx)
            data = bytes(litert_torch.convert(model, x, quant_config=quant).model_content())
            if cfg.precision == "fp16":
                data = lq.fp16_weights(data)

    except UserError:  # TargetError, or bad calibration data: already one sentence
        raise
    except Exception as exc:  # litert-torch raises many kinds: say which op, in one sentence
        raise _conversion_error(exc, source, x) from exc
    if cfg.precision == "int8":
        from edgeshrink.targets.tflite_file import float_io

        if cfg.io == "float":
            data = float_io(data)  # before: the quantizer may store weights past the buffer
            if lq.FLOAT_OUTPUT:
                with _quiet(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "already partially quantized": we know
                    data = lq.int8_weights_of_float_ops(data)
                notes["output_layer"] = "float compute, int8 weights (float logits)"
        notes.update(scheme="full integer: int8 activations (per-tensor, asymmetric), "
                            "int8 weights (per-channel, symmetric)",
                     calibrator=cfg.calibrator, io=cfg.io,
                     bias_correction=cfg.bias_correction,
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
    ops = tf.op_names(data)
    notes["runtime_ops"] = len(ops)  # what the interpreter dispatches: the estimate's per-op cost
    if cfg.micro:
        tf.check_micro_ops(ops)
        notes["ops"] = sorted(set(ops))
        notes["arena_bytes"] = tf.arena_bytes(data)
    path = ctx.artifact_path(".tflite")
    atomic_write_bytes(path, data)
    if cfg.micro:
        notes["c_header"] = tf.write_c_header(path).name
    precision = {"int8-dynamic": "int8"}.get(cfg.precision, cfg.precision)
    return Artifact(path=path, model=model, precision=precision, runtime="litert", notes=notes)


# ---------------------------------------------------------------------------- the target

# A fresh process that opens the file and runs it (int8 inputs quantized as the target
# does): the memory a device owner sees (edgeshrink.bench.fresh adds the peak report).
_CHILD = r"""
import sys
import numpy as np
from edgeshrink.bench.rt_litert import open_session, quantize
path, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = np.load(npz)
sess = open_session(path, threads)
feeds = {a.name: quantize(arrays[f"arr_{k}"], a) for k, a in enumerate(sess.get_inputs())}
for _ in range(3):
    sess.run(None, feeds)
"""


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
            files.append(Path(art.path).with_name(Path(header).name))  # beside the .tflite
        return files

    def file_figures(self, art) -> dict:
        """The ``.tflite``'s bytes only: a C header is source text that compiles into exactly
        those bytes in flash (its text is ~6x that); the hash is what a device bench JSON
        names."""
        import hashlib
        import zlib

        data = Path(art.path).read_bytes()
        return {"path": Path(art.path), "size": len(data),
                "compressed": len(zlib.compress(data, 9)),
                "sha256": hashlib.sha256(data).hexdigest()}

    def peak_memory_mb(self, art, inputs: tuple[np.ndarray, ...], threads: int) -> float | None:
        """A fresh process that opens the file in LiteRT's interpreter and runs it."""
        return self.fresh_peak_mb(_CHILD, Path(art.path), inputs, str(threads))

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
            "#include <cstdint>\n#include <cstring>\n"
            f"#include \"{header}\"\n"
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
        return (f"Python (LiteRT):\n\n```python\n{py}```\n\n"
                f"C++ (TensorFlow Lite Micro):\n\n```cpp\n{cc}```")


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
