"""TensorRT: the ONNX QDQ file ``trtexec`` builds an INT8 engine from on the Jetson.

TensorRT's explicit quantization reads QuantizeLinear/DequantizeLinear pairs and requires
them symmetric: int8 with zero point 0, per-channel on the weights' output axis
(NVIDIA, "Explicit Quantization", TensorRT developer guide). The file is built by the same
static INT8 path as ONNX Runtime's (:func:`edgeshrink.quant.ort.static_int8_file`) with
int8 symmetric activations (S8S8) and per-channel symmetric weights, and with a Q/DQ pair
on the float weights, the form every TensorRT release since 8.0 parses (the engine stores
them as int8). Every zero point is checked to be 0 before the file is handed over.

No engine is built or timed here: an engine is specific to the GPU and the TensorRT version
it is built with, so it is built on the device with the command in
``notes["trtexec"]``. Accuracy comes from running the same QDQ file in ONNX Runtime (a
proxy: TensorRT fuses and may pick different kernels), and the latency of a TensorRT
candidate is a roofline estimate on :data:`ESTIMATE_DEVICE`, labelled ``estimate``.

Example:
    >>> from edgeshrink.targets import get_target
    >>> get_target("trt").measured_here
    False
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.targets.base import Target, TargetError
from edgeshrink.targets.configs import TensorRTQDQConfig
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["TensorRTTarget", "TARGET", "trtexec_command", "check_symmetric_qdq",
           "NOT_TIMED_HERE", "ESTIMATE_DEVICE"]

ESTIMATE_DEVICE = "jetson-orin-nano"  # the profile a TensorRT candidate's latency is estimated on
NOT_TIMED_HERE = ("No TensorRT engine was built or timed on this machine: the engine is built "
                  "on the device with the trtexec command; the metric comes from the same QDQ "
                  "file run in ONNX Runtime, and the latency is a roofline estimate.")
_OPSET_MIN = 13  # per-channel QuantizeLinear (axis) needs opset 13


def trtexec_command(name: str) -> str:
    """The two commands a user runs on the Jetson for ``NAME.onnx``: build the engine once,
    then time it (``trtexec`` ships with JetPack at ``/usr/src/tensorrt/bin/trtexec``)."""
    stem = Path(name).stem
    return (f"trtexec --onnx={stem}.onnx --int8 --fp16 --saveEngine={stem}.engine "
            f"--skipInference\n"
            f"trtexec --loadEngine={stem}.engine --iterations=200 --warmUp=500 "
            f"--percentile=50,90,99")


def check_symmetric_qdq(path: Path | str) -> int:
    """Number of QuantizeLinear nodes of ``path``, after checking what TensorRT needs of each
    Q/DQ: an int8 zero point that is present and all zero, standard ONNX ops only, and an
    opset of at least 13. Raises :class:`TargetError` naming the first offending node."""
    import onnx_ir as ir

    model = ir.load(str(path))
    opset = model.opset_imports.get("", 0)
    if opset < _OPSET_MIN:
        raise TargetError(f"TensorRT needs opset {_OPSET_MIN} or later for per-channel Q/DQ; "
                          f"the file has opset {opset}.")
    quantize = 0
    for node in model.graph.all_nodes():
        if node.domain not in ("", "ai.onnx"):
            raise TargetError(f"TensorRT cannot parse {node.domain}::{node.op_type} "
                              f"(node {node.name}).")
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        quantize += node.op_type == "QuantizeLinear"
        zp = node.inputs[2] if len(node.inputs) > 2 else None
        value = zp.const_value if zp is not None else None
        if value is None or value.dtype != ir.DataType.INT8 or np.any(value.numpy() != 0):
            raise TargetError(f"TensorRT needs a symmetric int8 zero point of 0 on every "
                              f"Q/DQ; {node.op_type} {node.name} has "
                              f"{'none' if value is None else value.numpy().ravel()[:4]}.")
    if not quantize:
        raise TargetError("the TensorRT QDQ file has no QuantizeLinear node: nothing would "
                          "run in INT8.")
    return quantize


def engine_layers(path: Path | str) -> int:
    """Kernels the engine would dispatch, roughly: the graph's nodes less the Q/DQ nodes and
    the activations that TensorRT fuses into the layer before them (NVIDIA, "Types of
    Fusions": convolution/GEMM + ReLU, and Q/DQ folded into the quantized layer)."""
    import onnx_ir as ir

    graph = ir.load(str(path)).graph
    fused = ("QuantizeLinear", "DequantizeLinear")
    count = 0
    for node in graph.all_nodes():
        src = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
        while src is not None and src.op_type in fused:  # Conv -> Q -> DQ -> Relu fuses too
            src = src.inputs[0].producer()
        if node.op_type in fused or (node.op_type in ("Relu", "Clip", "LeakyRelu")
                                     and src is not None
                                     and src.op_type in ("Conv", "Gemm", "MatMul")):
            continue
        count += 1
    return count


@transform(TensorRTQDQConfig)
def build_qdq(cfg: TensorRTQDQConfig, model, ctx: TransformContext) -> Artifact:
    """The QDQ ``.onnx`` of ``model`` for ``trtexec --int8`` (see the module docstring)."""
    from edgeshrink.quant.ort import StaticInt8Config, static_int8_file

    # TensorRT's own calibrators are histogram-based entropy ones (IInt8EntropyCalibrator2)
    calibrator = "entropy" if cfg.calibrator == "histogram" else cfg.calibrator
    static = StaticInt8Config(calibrator=calibrator, activations="int8",
                              symmetric_activations=True, per_channel=True,
                              calibration_samples=cfg.calibration_samples,
                              reduce_range="off")  # the Jetson, not this host, runs it
    path = static_int8_file(static, model, ctx, extra_options={
        "WeightSymmetric": True, "AddQDQPairToWeight": True, "DedicatedQDQPair": True,
        "QuantizeBias": False,  # TensorRT folds float biases; it has no int32 DQ
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})
    pairs = check_symmetric_qdq(path)
    notes = {"format": "QDQ (TensorRT explicit quantization)", "activations": "int8",
             "symmetric_activations": True, "per_channel": True, "calibrator": calibrator,
             "weights_stored": "fp32 with a Q/DQ pair (the engine stores int8)",
             "quantize_nodes": pairs, "onnx_nodes": engine_layers(path),
             "trtexec": trtexec_command(path.name),
             "not_timed_here": NOT_TIMED_HERE,
             "accuracy_from": "ONNX Runtime on the QDQ file (a proxy for the TensorRT engine)"}
    return Artifact(path=path, model=model, precision="int8", runtime="tensorrt", notes=notes)


class TensorRTTarget(Target):
    """The QDQ ``.onnx`` file TensorRT builds an engine from; not timed here."""

    name = "tensorrt"
    label = "TensorRT (ONNX QDQ for trtexec)"
    suffix = ".onnx"
    precisions = frozenset({"fp32", "fp16", "int8"})
    measured_here = False

    def missing(self) -> str | None:
        """What building the QDQ file and running it as the engine's proxy needs here: ONNX
        Runtime (its quantizer and CPU provider) and onnx-ir (the symmetric-Q/DQ check)."""
        import importlib.util

        absent = [pip for module, pip in (("onnxruntime", "onnxruntime"), ("onnx_ir", "onnx-ir"))
                  if importlib.util.find_spec(module) is None]
        if absent:
            return (f"the TensorRT QDQ file needs {' and '.join(absent)} here; install "
                    f"{'them' if len(absent) > 1 else 'it'} with `pip install "
                    f"{' '.join(absent)}` (TensorRT itself runs on the device).")
        return None

    def load(self, path: Path, threads: int = 1):
        """The QDQ file in ONNX Runtime: the accuracy proxy for the engine, not TensorRT."""
        from edgeshrink.export import ort_session, run_onnx

        session = ort_session(path, threads)
        return lambda *xs: run_onnx(session, xs)

    def figures(self, art, inputs: tuple[np.ndarray, ...], threads: tuple[int, ...],
                budget_s: float = 1.0) -> dict[str, Any]:
        """Size and sha256 of the file; the latency is a roofline estimate on
        :data:`ESTIMATE_DEVICE` (``"latency_source": "estimate"``), nothing is timed."""
        files = self.file_figures(art)
        ms = _estimate_ms(Path(art.path), files["size"])
        stats = {"p50": ms, "p90": ms, "p99": ms, "min": ms, "mean": ms, "count": 0}
        return {**files, "by_threads": {str(t): dict(stats) for t in threads}, "peak_mb": None,
                "latency_source": "estimate", "latency_device": ESTIMATE_DEVICE}

    def loading_code(self, art, *, file_name: str) -> str:
        return trtexec_snippet(file_name)


def trtexec_snippet(file_name: str) -> str:
    """README text: build the engine on the Jetson, then run it from Python."""
    stem = Path(file_name).stem
    return f"""Build the engine on the Jetson (once per device and TensorRT version), then time it:

```
{trtexec_command(file_name)}
```

Run the engine from Python (TensorRT 10, as shipped with JetPack 6):

```python
import numpy as np, tensorrt as trt
import pycuda.autoinit, pycuda.driver as cuda  # or cuda-python
engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(open("{stem}.engine", "rb").read())
ctx = engine.create_execution_context()
names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
bufs = {{n: np.zeros([max(d, 1) for d in engine.get_tensor_shape(n)],
                    trt.nptype(engine.get_tensor_dtype(n))) for n in names}}
dev = {{n: cuda.mem_alloc(b.nbytes) for n, b in bufs.items()}}
for n in names:
    ctx.set_tensor_address(n, int(dev[n]))
ctx.execute_async_v3(0); cuda.Context.synchronize()
```

The metric in the report comes from this QDQ file run in ONNX Runtime, a proxy for the
engine; no engine was built or timed where the study ran.
"""


def _estimate_ms(path: Path, file_bytes: int) -> float:
    """Roofline latency (ms) of the QDQ file on :data:`ESTIMATE_DEVICE`, from its own ops
    (its weights are stored in fp32: about a parameter per 4 bytes)."""
    from edgeshrink.devices import load_profile
    from edgeshrink.devices.estimate import Workload, estimate
    from edgeshrink.measure.op_precision import macs_by_precision

    split = macs_by_precision(path) or {}
    w = Workload(name=path.stem, macs=int(sum(split.values())), params=file_bytes // 4,
                 precision="int8", file_bytes=file_bytes, macs_by_precision=split or None)
    return float(estimate(w, load_profile(ESTIMATE_DEVICE)).latency_ms)


TARGET = TensorRTTarget()
