"""PT2E quantization for the LiteRT target: litert-torch's ``PT2EQuantizer`` annotations
with edgeshrink's activation calibrators, ReLU6 observed after its clamp, float logits at
the output; and the ai-edge-quantizer passes (fp16 weights, int8 weights of float layers).

Heavy packages (torch.export, torchao, litert-torch, ai-edge-quantizer) are imported inside
the functions. Used by :mod:`edgeshrink.targets.litert`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from edgeshrink.targets.configs import LiteRTConfig
from edgeshrink.transforms import TransformContext


@contextlib.contextmanager
def quiet():
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
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                yield
    finally:
        for fd, copy_fd in saved:
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


# ---------------------------------------------------------------------------- calibration

FLOAT_OUTPUT = True
PERCENTILE = 99.99  # what the ``percentile`` calibrator keeps (as StaticInt8Config's default)


def _quantizer(calibrator: str, *, calls: int = 1, float_output: bool = False):
    """litert-torch's PT2EQuantizer, per-channel symmetric int8 weights, with activations
    observed by ``calibrator`` over ``calls`` calibration batches (``histogram``:
    litert-torch's own HistogramObserver)."""
    import dataclasses

    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True)
    if calibrator == "histogram":
        return PT2EQuantizer().set_global(config)
    from edgeshrink.quant.pt2e_observer import (
        RangeObserver,
        decompose_prelu,
        observe_after_relu6,
        quantize_prelu,
        quantize_relu_after_add,
        quantize_residual_adds,
        share_through_max_pool,
        softmax_as_kernel,
    )

    ctr = RangeObserver.with_args(method=calibrator, calls=calls, percentile=PERCENTILE,
                                  eps=2**-12)
    spec = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=ctr)
    config = dataclasses.replace(config, input_activation=spec, output_activation=spec)

    class Quantizer(PT2EQuantizer):
        def transform_for_annotation(self, model):
            decompose_prelu(model)  # a copy: prepare_pt2e works on the exported module
            softmax_as_kernel(model)
            return super().transform_for_annotation(model)

        def annotate(self, model):
            model = super().annotate(model)
            observe_after_relu6(model, spec)
            quantize_prelu(model, spec)
            share_through_max_pool(model)
            quantize_residual_adds(model, spec)
            quantize_relu_after_add(model, spec)
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


def full_int8(model, ctx: TransformContext, cfg: LiteRTConfig):
    import torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgeshrink.quant.ort import check_calibration
    from edgeshrink.quant.pt2e_observer import InputMeans, correct_biases

    data = ctx.task.calibration
    check_calibration(data, ctx)
    exported, batch = _export_for_calibration(model, ctx)
    calls = -(-min(cfg.calibration_samples, len(data)) // batch)
    quantizer = _quantizer(cfg.calibrator, calls=calls,
                           float_output=FLOAT_OUTPUT and cfg.io == "float")
    prepared = prepare_pt2e(exported, quantizer)
    _keep_io_full_range(prepared)
    means = InputMeans(prepared) if cfg.bias_correction else None
    with torch.no_grad():
        for xs in data.head(cfg.calibration_samples).numpy_batches(batch):
            prepared(*(torch.from_numpy(a) for a in xs))
    means = means.means() if means is not None else None
    converted = convert_pt2e(prepared, fold_quantize=False)
    if means is not None:
        correct_biases(converted, means)
    return converted, QuantConfig(pt2e_quantizer=quantizer)


def dynamic_int8(model, ctx: TransformContext):
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


def fp16_weights(data: bytes) -> bytes:
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


def int8_weights_of_float_ops(data: bytes) -> bytes:
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
