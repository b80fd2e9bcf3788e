"""A PT2E activation observer that sets its range with our calibrators.

torchao's PT2E observers offer min-max and a histogram (L2) search; the percentile, entropy
(KL), MSE and mean min-max calibrators of :mod:`edgeshrink.quant.calibrate` reach PT2E
quantizers (litert-torch's for LiteRT, XNNPACK's for ExecuTorch) through this observer. It
keeps the exact extremes, as ``MinMaxObserver`` does, each sample's own extremes (for mean
min-max), and a histogram over the extremes of a fixed-seed subsample of the values: the
same budget per tensor as the ONNX path's :func:`~edgeshrink.quant.calibrate.collect_stats`
(``MAX_VALUES`` over the whole calibration set, spread evenly over its ``calls`` forward
calls), so that a calibrator picks the same range whichever runtime it serves. The scale
and zero point follow from that range as the quantizer's spec (dtype, qscheme) says.

Imports torch and torchao at module level: import it inside functions only.

Example:
    >>> ctor = RangeObserver.with_args(method="percentile", calls=4, eps=2**-12)
"""

from __future__ import annotations

import numpy as np
import torch
from torchao.quantization.pt2e import MinMaxObserver

from edgeshrink.quant.calibrate import MAX_VALUES, TensorStats, calibrate_range

__all__ = ["RangeObserver", "InputMeans", "correct_biases", "observe_after_relu6",
           "decompose_prelu", "quantize_prelu", "softmax_as_kernel", "share_through_max_pool",
           "quantize_residual_adds", "quantize_relu_after_add"]


class RangeObserver(MinMaxObserver):
    """``MinMaxObserver`` whose range comes from ``calibrate_range(stats, method)``.

    Args:
        method: one of :data:`~edgeshrink.quant.calibrate.CALIBRATORS` (``minmax`` keeps
            no histogram: torchao's own min-max range).
        calls: how many forward calls calibration makes (batches); each keeps
            ``ceil(max_values / calls)`` values for the histogram.
        max_values: values kept per tensor over the whole calibration.
        percentile: what the ``percentile`` calibrator keeps.
    """

    def __init__(self, method: str = "percentile", calls: int = 1,
                 max_values: int = MAX_VALUES, percentile: float = 99.99, **kwargs) -> None:
        super().__init__(**kwargs)
        self.method = method
        self.per_call = -(-max_values // max(calls, 1))
        self.percentile = percentile
        self._values: list[np.ndarray] = []
        self._per_sample = TensorStats.empty(0.0, 0.0, 1)
        self._rng = np.random.default_rng(0)

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        out = super().forward(x_orig)
        if self.method != "minmax":
            x = x_orig.detach().to(torch.float32).cpu().numpy()
            v = x.reshape(-1)
            if v.size > self.per_call:
                v = v[self._rng.integers(0, v.size, self.per_call)]
            self._values.append(v.copy())
            if x.ndim > 1:
                self._per_sample.add_samples(x)
        return out

    @torch.jit.export
    def calculate_qparams(self):
        if self.method == "minmax" or not self._values:
            return super().calculate_qparams()
        lo, hi = float(self.min_val), float(self.max_val)  # exact, whatever was subsampled
        stats = TensorStats.empty(lo, hi)
        stats.lo, stats.hi = lo, hi
        stats.add(np.concatenate(self._values))
        p = self._per_sample
        stats.samples, stats.sample_lo_sum, stats.sample_hi_sum = (
            p.samples, p.sample_lo_sum, p.sample_hi_sum)
        a, b = calibrate_range(stats, self.method, percentile=self.percentile)
        a, b = max(a, min(lo, 0.0)), min(b, max(hi, 0.0))
        return self._calculate_qparams(torch.tensor(a, dtype=torch.float32),
                                       torch.tensor(b, dtype=torch.float32))


def observe_after_relu6(model, spec) -> None:
    """Quantize a Conv/Linear + ReLU6 pair once, after the clamp.

    litert-torch's and ExecuTorch's XNNPACK quantizers fuse Conv+ReLU but give ReLU6
    (``hardtanh(0, 6)``) the observer of the Conv's output, so the int8 grid spans the pre-activation's range (tens,
    both signs) while only [0, 6] survives the clamp. Observed after the clamp instead, the
    converter still fuses the pair into one int8 CONV_2D with a RELU6 activation (and
    XNNPACK into one int8 convolution with its output clamp). MobileNetV2, min-max: LiteRT
    64.25 -> 74.75 % top-1 agreement, ExecuTorch 62.3 -> 70.75 %.
    """
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


def quantize_residual_adds(model, spec) -> int:
    """Annotate every tensor-tensor ``add`` the quantizer left in float (litert-torch's
    PT2E quantizer annotates none of MobileNetV2's ten residual adds), so that the file runs
    ADD in int8 instead of DEQUANTIZE -> float ADD -> QUANTIZE. MobileNetV2 (percentile, 400
    crops): DEQUANTIZE ops 15 -> 2, top-1 agreement 81.75 -> 82.0 %. Returns how many."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    adds = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
    done = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in adds:
            continue
        ann = node.meta.get("quantization_annotation")
        a, b = node.args[:2]
        if (ann is not None and ann.output_qspec is not None) or not (
                isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
            continue
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={a: spec, b: spec}, output_qspec=spec, _annotated=True)
        done += 1
    return done



_SHARING_TAIL = (torch.ops.aten.adaptive_avg_pool2d.default, torch.ops.aten.mean.dim,
                 torch.ops.aten.flatten.using_ints, torch.ops.aten.view.default,
                 torch.ops.aten.reshape.default, torch.ops.aten.squeeze.dim)


def _left_after_int8(model, targets):
    """(node, its first input) for each call of one of ``targets`` that the quantizer left
    unannotated although its input has a quantized output: where an int8 tensor would go
    back to float."""
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in targets:
            continue
        x = node.args[0]
        ann = node.meta.get("quantization_annotation")
        prev = getattr(x, "meta", {}).get("quantization_annotation")
        if (ann is None or not ann._annotated) and prev is not None \
                and prev.output_qspec is not None:
            yield node, x


def quantize_relu_after_add(model, spec) -> int:
    """Annotate each ReLU that litert-torch's quantizer leaves unannotated after an int8
    ``add`` (a residual block's output), with its own observer at the output (TFLite's and
    TFLM's int8 RELU rescale; the converter fuses it into the ADD), and let the global
    average pool and flatten that follow share its scale (int8 MEAN and RESHAPE). Run after
    :func:`quantize_residual_adds`. ResNet-20's last block ran DEQUANTIZE -> float RELU ->
    MEAN -> QUANTIZE in its microcontroller file. Returns how many ReLUs."""
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    relus = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    adds = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
    done = 0
    for node, x in _left_after_int8(model, relus):
        if getattr(x, "target", None) not in adds:
            continue
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={x: SharedQuantizationSpec(x)}, output_qspec=spec,
            _annotated=True)
        done += 1
        src, users = node, list(node.users)
        while len(users) == 1 and users[0].op == "call_function" and \
                users[0].target in _SHARING_TAIL and users[0].args[0] is src:
            nxt = users[0]
            if nxt.meta.get("quantization_annotation") is not None:
                break
            shared = SharedQuantizationSpec(src)
            nxt.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={src: shared}, output_qspec=shared, _annotated=True)
            src, users = nxt, list(nxt.users)
    return done

# ------------------------------------------------------------------------ bias correction

_LAYERS = (torch.ops.aten.conv2d.default, torch.ops.aten.conv1d.default,
           torch.ops.aten.linear.default)


class InputMeans:
    """Per-channel means of what each Conv/Linear of a prepared PT2E graph reads, in FP32,
    recorded during calibration by forward hooks on the observers in front of them (any
    observer: ours or torchao's). Call :meth:`means` after calibrating, before converting.

    Example:
        >>> means = InputMeans(prepared); calibrate(prepared); means = means.means()
    """

    def __init__(self, prepared) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._handles = []
        for node in prepared.graph.nodes:
            src = node.args[0] if node.op == "call_function" and node.target in _LAYERS else None
            if getattr(src, "op", None) != "call_module" or not src.args:
                continue
            val = getattr(src.args[0], "meta", {}).get("val")  # what the observer watches
            if val is not None:
                axis = -1 if node.target == torch.ops.aten.linear.default else 1
                hook = self._hook(node.name, axis, _static_shape(val))
                self._handles.append(prepared.get_submodule(src.target).register_forward_hook(hook))

    def _hook(self, name: str, axis: int, shape: tuple):
        def add(_mod, inputs, _out):
            x = inputs[0]
            # One observer instance can serve several tensors (a quantizer's shared specs:
            # ReLU -> avg pool -> flatten): count only the calls with this layer's input.
            if x.ndim != len(shape) or any(d not in (-1, e) for d, e in zip(shape, x.shape, strict=True)):
                return
            x = x.detach().to(torch.float64).movedim(axis, -1)
            x = x.reshape(-1, x.shape[-1])
            self._sums[name] = self._sums.get(name, 0) + x.sum(0)
            self._counts[name] = self._counts.get(name, 0) + x.shape[0]
        return add

    def means(self) -> dict[str, np.ndarray]:
        """``{Conv/Linear node name: per-input-channel mean}``; removes the hooks."""
        for h in self._handles:
            h.remove()
        return {n: (s / self._counts[n]).numpy() for n, s in self._sums.items()}


def _static_shape(val) -> tuple:
    """A traced tensor's shape with each symbolic (dynamic) size as -1."""
    return tuple(d if isinstance(d, int) else -1 for d in val.shape)


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _value(gm, arg):
    return _attr(gm, arg.target) if getattr(arg, "op", None) == "get_attr" else arg


def correct_biases(converted, means: dict[str, np.ndarray]) -> int:
    """Shift the float bias of each Conv/Linear of a converted PT2E graph (``fold_quantize
    =False``: weights still ``dequantize(quantize(w))``) by its expected weight-quantization
    error on FP32 inputs, ``E[(W_q - W) x] = (W_q - W) E[x]`` (Nagel et al. 2019, sec. 4.2,
    empirical form; the same correction as the ONNX path's
    :func:`edgeshrink.quant.biascorr.correct_biases`). The converter then quantizes the
    corrected bias to int32. ``means``: :meth:`InputMeans.means`. Returns how many layers."""
    from edgeshrink.quant.biascorr import expected_shift

    done = 0
    for node in converted.graph.nodes:
        if node.op != "call_function" or node.target not in _LAYERS or node.name not in means:
            continue
        dq = node.args[1]
        q = dq.args[0] if isinstance(dq, torch.fx.Node) and dq.args else None
        bias = node.args[2] if len(node.args) > 2 else None
        if (not isinstance(q, torch.fx.Node) or getattr(q.args[0], "op", None) != "get_attr"
                or getattr(bias, "op", None) != "get_attr"):
            continue
        w = _value(converted, q.args[0])
        with torch.no_grad():
            qw = q.target(*(_value(converted, a) for a in q.args), **q.kwargs)
            wq = dq.target(qw, *(_value(converted, a) for a in dq.args[1:]), **dq.kwargs)
            err = (wq.to(torch.float64) - w.to(torch.float64)).numpy()
            groups = int(node.args[6]) if len(node.args) > 6 else 1
            shift = expected_shift(err, means[node.name], groups)
            b = _attr(converted, bias.target)
            b.sub_(torch.from_numpy(shift).to(b.dtype))
        done += 1
    return done


# ---------------------------------------------------------------------------------- PReLU

_PRELU_PARTS = "edgeshrink_prelu"  # node.meta key: which part of which decomposed PReLU


def decompose_prelu(gm) -> int:
    """Rewrite each ``aten.prelu`` of an exported graph as ``x + (alpha - 1) * clamp(x,
    max=0)`` (the same numbers for any alpha), in place. litert-torch lowers PReLU to
    ``relu(x) - alpha * relu(-x)`` and its PT2E quantizer annotates none of it, so a
    full-integer file ran every PReLU in float between DEQUANTIZE and QUANTIZE; this form
    becomes MINIMUM, MUL and ADD, which :func:`quantize_prelu` annotates so that each runs
    in int8 (TFLite and TFLM have int8 kernels for the three). No RELU on purpose: the
    quantizer would fuse it into the Conv/Linear in front and the converter then computes
    that layer twice, with and without the activation. Returns how many."""
    graph = gm.graph
    done = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target != torch.ops.aten.prelu.default:
            continue
        x, w = node.args[:2]
        val = x.meta.get("val")
        if getattr(w, "op", None) != "get_attr" or val is None:
            continue
        weight = _attr(gm, w.target).detach()
        # (1, C, 1, 1) rather than (C, 1, 1): litert-torch moves an op to NHWC (no
        # TRANSPOSE around it) only when all its inputs are 4-D
        shape = [1, weight.numel()] + [1] * (val.dim() - 2) if val.dim() >= 2 else [-1]
        name = f"_prelu_alpha_{done}"
        while hasattr(gm, name):
            name += "_"
        gm.register_buffer(name, weight.reshape(shape) - 1.0)
        with graph.inserting_before(node):
            alpha = graph.get_attr(name)
            neg = graph.call_function(torch.ops.aten.clamp.default, (x, None, 0.0))
            mul = graph.call_function(torch.ops.aten.mul.Tensor, (neg, alpha))
            add = graph.call_function(torch.ops.aten.add.Tensor, (x, mul))
        for part, new in (("alpha", alpha), ("neg", neg), ("mul", mul), ("add", add)):
            new.meta[_PRELU_PARTS] = part
            if part != "alpha":
                new.meta["val"] = val  # every part has x's shape and dtype
            for key in ("stack_trace", "nn_module_stack"):
                if key in node.meta:
                    new.meta[key] = node.meta[key]
        alpha.meta["val"] = _attr(gm, name)
        node.replace_all_uses_with(add)
        graph.erase_node(node)
        done += 1
    if done:
        graph.eliminate_dead_code()
        gm.recompile()
    return done


def quantize_prelu(model, spec) -> int:
    """Annotate the parts of each PReLU that :func:`decompose_prelu` wrote, when the PReLU's
    input is int8: MINIMUM keeps its input's scale (TFLite's int8 MINIMUM requires it), MUL
    and ADD get their own observers, ``alpha - 1`` is int8 per-tensor symmetric. Returns
    how many PReLUs."""
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        QuantizationSpec,
        SharedQuantizationSpec,
    )

    alpha_spec = QuantizationSpec(dtype=torch.int8, quant_min=-127, quant_max=127,
                                  qscheme=torch.per_tensor_symmetric, is_dynamic=False,
                                  observer_or_fake_quant_ctr=MinMaxObserver.with_args(
                                      eps=2**-12))
    done = 0
    for add in model.graph.nodes:
        if add.meta.get(_PRELU_PARTS) != "add":
            continue
        x, mul = add.args
        neg, alpha = mul.args
        ann = getattr(x, "meta", {}).get("quantization_annotation")
        if ann is None or ann.output_qspec is None:
            continue  # float input: the parts stay float (the same numbers as PReLU)
        shared_x = SharedQuantizationSpec(x)

        def annotate(node, inputs, output):
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map=inputs, output_qspec=output, _annotated=True)

        annotate(neg, {x: shared_x}, shared_x)
        annotate(mul, {neg: SharedQuantizationSpec(neg), alpha: alpha_spec}, spec)
        annotate(add, {x: shared_x, mul: SharedQuantizationSpec(mul)}, spec)
        done += 1
    return done


def softmax_as_kernel(gm) -> int:
    """Rewrite ``aten.softmax.int`` as ``aten._softmax`` (the same op), in place: the form
    litert-torch's quantizer annotates (int8 out, scale 1/256, TFLite's int8 SOFTMAX), so
    that O-Net's probabilities leave a microcontroller file in int8 instead of through
    DEQUANTIZE and a float SOFTMAX. Returns how many."""
    done = 0
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.softmax.int:
            continue
        x, dim = node.args[:2]
        dtype = node.args[2] if len(node.args) > 2 else node.kwargs.get("dtype")
        if dtype is not None:
            continue
        node.target, node.args, node.kwargs = torch.ops.aten._softmax.default, (x, dim, False), {}
        done += 1
    if done:
        gm.recompile()
    return done


def share_through_max_pool(model) -> int:
    """Give each MaxPool whose input is int8 its input's scale and zero point at its output
    (TFLite's int8 MAX_POOL_2D keeps them anyway). litert-torch's quantizer leaves MaxPool
    unannotated, so the next layer's input observer saw the pooled range and the converter
    put an int8 -> int8 QUANTIZE (requantize) after each of O-Net's three pools. Returns how
    many."""
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    pools = (torch.ops.aten.max_pool2d.default, torch.ops.aten.max_pool1d.default)
    done = 0
    for node, x in _left_after_int8(model, pools):
        shared = SharedQuantizationSpec(x)
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={x: shared}, output_qspec=shared, _annotated=True)
        done += 1
    return done
