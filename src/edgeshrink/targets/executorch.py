"""ExecuTorch target: a ``.pte`` whose graph is delegated to XNNPACK, FP32 or INT8.

Build (``ExecuTorchConfig``): ``torch.export`` at batch 1, then for INT8 PT2E with the
XNNPACK quantizer (int8 per-tensor activations, per-channel symmetric int8 weights)
calibrated on the task's calibration data, then ``to_edge_transform_and_lower`` with the
XNNPACK partitioner and ``to_executorch``. What XNNPACK does not take runs on ExecuTorch's
portable kernels; the artifact's notes list those ops, since a partly delegated graph runs
slower than the figures of a fully delegated one suggest.

Run: :mod:`edgeshrink.bench.rt_executorch` (numpy + ExecuTorch's Python runtime).

Example:
    >>> art = apply_recipe([ExecuTorchConfig(precision="int8")], ctx)  # doctest: +SKIP
    >>> get_target("executorch").load(art.path)(x).shape  # doctest: +SKIP
    (1, 10)
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgeshrink.targets.base import Target, TargetError
from edgeshrink.targets.configs import ExecuTorchConfig
from edgeshrink.transforms import Artifact, TransformContext, transform

__all__ = ["ExecuTorchTarget", "TARGET", "build_pte"]


class ExecuTorchTarget(Target):
    name = "executorch"
    label = "ExecuTorch (.pte)"
    suffix = ".pte"
    extra = "executorch"
    precisions = frozenset({"fp32", "int8"})

    def missing(self) -> str | None:
        from edgeshrink.bench.rt_executorch import missing

        return missing()

    def load(self, path: Path, threads: int = 1):
        from edgeshrink.bench.rt_executorch import open_session

        self.require()
        session = open_session(path, threads)
        names = [a.name for a in session.get_inputs()]
        return lambda *xs: session.run(None, dict(zip(names, xs, strict=True)))[0].astype(
            np.float32, copy=False)

    def peak_memory_mb(self, art, inputs: tuple[np.ndarray, ...], threads: int) -> float | None:
        return self.fresh_peak_mb(_CHILD, Path(art.path), inputs, str(threads))

    def loading_code(self, art, *, file_name: str) -> str:
        return _LOADING_CODE.format(file=file_name)


TARGET = ExecuTorchTarget()

# A fresh process that loads and runs the file: the memory a device owner sees
# (edgeshrink.bench.fresh adds the peak report).
_CHILD = r"""
import sys
import numpy as np
import torch
from executorch.runtime import Runtime
import executorch.extension.pybindings.portable_lib as lib
pte, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
lib._unsafe_reset_threadpool(threads)
arrays = np.load(npz)
method = Runtime.get().load_program(pte).load_method("forward")
batch = method.metadata.input_tensor_meta(0).sizes()[0]
xs = [torch.from_numpy(arrays[f"arr_{k}"][:batch].copy()) for k in range(len(arrays.files))]
for _ in range(3):
    method.execute(xs)
"""


_LOADING_CODE = '''\
# pip install executorch  (its Python runtime takes torch tensors, so torch comes too)
import numpy as np
import torch
from executorch.runtime import Runtime

method = Runtime.get().load_program("{file}").load_method("forward")
x = np.zeros(method.metadata.input_tensor_meta(0).sizes(), np.float32)  # your input
logits = method.execute([torch.from_numpy(x)])[0].numpy()  # batch is static (1)

# On the device without Python: the C++ Module API (extension/module), linked with the
# XNNPACK backend (executorch_backends / xnnpack_backend):
#   executorch::extension::Module module("{file}");
#   auto out = module.forward(executorch::extension::from_blob(data, {{1, C, H, W}}));
'''


# ---------------------------------------------------------------------------- build


def _partitioner(excluded: list[str]):
    """XNNPACK's partitioner, except that PReLU on a tensor that is not 4-D stays out.

    ExecuTorch 1.4.1's channels-last pass cannot lay out a PReLU that follows a Linear
    ("Attempting to convert non-NHWC compatible node to NHWC", on O-Net's prelu5): the
    partitioner accepts it and the lowering then fails. Left out, it runs on portable
    kernels (``gt`` + ``where``); ``excluded`` collects the names of such nodes.
    """
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.config.node_configs import PreluConfig
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    class Prelu4dConfig(PreluConfig):
        def check_constraints(self, node, ep) -> bool:
            val = node.all_input_nodes[0].meta.get("val")
            if val is None or val.dim() != 4:
                excluded.append(node.name)
                return False
            return super().check_constraints(node, ep)

    configs = [Prelu4dConfig if c is PreluConfig else c for c in ALL_PARTITIONER_CONFIGS]
    return XnnpackPartitioner(configs=configs)


def _op_in(exc: BaseException) -> str | None:
    """The ATen op an exporter's or lowering's message names, if any."""
    text = f"{exc} {exc.__cause__ or ''}"
    hit = re.search(r"(aten(?:::|\.)[A-Za-z0-9_]+)", text)
    return hit.group(1).replace("aten.", "aten::") if hit else None


def _fail(what: str, exc: BaseException) -> TargetError:
    op = _op_in(exc)
    if op and "not in Core ATen opset" in str(exc):
        return TargetError(f"ExecuTorch cannot {what} {op}: it is not in the Core ATen opset "
                           "that ExecuTorch programs are made of.")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if op:
        return TargetError(f"ExecuTorch cannot {what} {op} ({first}).")
    return TargetError(f"ExecuTorch cannot {what} this model: {first}.")


def _export(model: nn.Module, example: tuple, dynamic: bool = False):
    import torch

    shapes = None
    if dynamic:  # calibration runs whole batches through the prepared graph
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        shapes = tuple({0: batch} for _ in example)
    try:
        return torch.export.export(model, example, dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds
        raise _fail("export", exc) from None


def _observer(calibrator: str, calls: int = 1):
    """The activation observer for ``calibrator``: torchao's min-max and histogram
    observers, else ours (:class:`edgeshrink.quant.pt2e_observer.RangeObserver`, over
    ``calls`` calibration batches)."""
    from torchao.quantization.pt2e import HistogramObserver, MinMaxObserver

    if calibrator == "minmax":
        return MinMaxObserver.with_args(eps=2**-12)
    if calibrator == "histogram":  # the XNNPACK quantizer's default
        return HistogramObserver.with_args(eps=2**-12)
    from edgeshrink.quant.pt2e_observer import RangeObserver

    return RangeObserver.with_args(method=calibrator, calls=calls, eps=2**-12)


def _quantize(model: nn.Module, example: tuple, cfg: ExecuTorchConfig, data) -> nn.Module:
    """PT2E with the XNNPACK quantizer, calibrated on ``data``; the converted module."""
    import dataclasses

    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    batch = 32
    try:  # a dynamic batch calibrates 32 samples a call (example at batch 2: not specialised)
        graph = _export(model, tuple(torch.cat([x, x]) for x in example), dynamic=True).module()
    except TargetError:  # a model that fixes its batch: calibrate one sample at a time
        graph, batch = _export(model, example).module(), len(example[0])
    calls = -(-min(cfg.calibration_samples, len(data)) // batch)
    qcfg = get_symmetric_quantization_config(is_per_channel=True)
    act = dataclasses.replace(qcfg.input_activation,
                              observer_or_fake_quant_ctr=_observer(cfg.calibrator, calls))
    qcfg = dataclasses.replace(qcfg, input_activation=act, output_activation=act)
    from edgeshrink.quant.pt2e_observer import observe_after_relu6

    class Quantizer(XNNPACKQuantizer):
        def annotate(self, model):  # ReLU6 observed after its clamp, not before
            model = super().annotate(model)
            observe_after_relu6(model, act)
            return model

    prepared = prepare_pt2e(graph, Quantizer().set_global(qcfg))
    with torch.no_grad():
        for xs in data.head(cfg.calibration_samples).numpy_batches(batch):
            prepared(*(torch.from_numpy(x) for x in xs))
    return convert_pt2e(prepared)


def _delegation(program, excluded: list[str]) -> dict[str, Any]:
    """What XNNPACK took and what runs on portable kernels, from the lowered graph."""
    top = [n for n in program.exported_program().graph_module.graph.nodes
           if n.op == "call_function"]  # fmt: skip
    calls = [n for n in top if "executorch_call_delegate" in str(n.target)]
    rest = sorted({_op_name(n.target) for n in top
                   if n not in calls and "getitem" not in str(n.target)})  # fmt: skip
    inside = 0
    for name, mod in program.exported_program().graph_module.named_children():
        if name.startswith("lowered_module"):
            inside += sum(n.op == "call_function" for n in mod.original_module.graph.nodes)
    notes = {"delegate": "XNNPACK", "delegates": len(calls), "delegated_ops": inside,
             "runtime_ops": inside + sum(n not in calls and "getitem" not in str(n.target)
                                         for n in top),
             "undelegated_ops": rest, "fully_delegated": not rest}  # fmt: skip
    if excluded:
        notes["kept_out_of_xnnpack"] = (
            f"PReLU on a non-4-D tensor ({', '.join(dict.fromkeys(excluded))}): ExecuTorch 1.4.1's XNNPACK "
            "channels-last pass cannot lower it, so it runs on portable kernels")
    return notes


def _op_name(target) -> str:
    """``aten::where.self`` for an edge op, else its string."""
    op = getattr(target, "_op", None) or target
    name = getattr(op, "_name", None) or getattr(op, "__name__", None) or str(target)
    overload = getattr(op, "_overloadname", "")
    if overload and overload != "default" and not str(name).endswith(f".{overload}"):
        return f"{name}.{overload}"
    return str(name)


def _check_kernels(program) -> None:
    """Every op left outside the delegate needs an ExecuTorch kernel, or the file would
    fail only when loaded on the device."""
    from edgeshrink.bench.rt_executorch import quiet_native

    with quiet_native():
        from executorch.runtime import Runtime

        have = {n.split(".")[0] for n in Runtime.get().operator_registry.operator_names}
    for node in program.exported_program().graph_module.graph.nodes:
        if node.op != "call_function" or "delegate" in str(node.target):
            continue
        name = _op_name(node.target).split(".")[0]
        if name.startswith("aten::") and name not in have:
            raise TargetError(f"ExecuTorch cannot run {name}: XNNPACK does not take it and "
                              "the runtime has no portable kernel for it.")


def build_pte(model: nn.Module, example: tuple, out: Path, *,
              cfg: ExecuTorchConfig | None = None, data=None) -> dict[str, Any]:
    """Write the XNNPACK-delegated ``.pte`` of ``model`` (static batch of ``example``) to
    ``out`` atomically, at ``cfg``'s precision (default FP32); returns the delegation
    notes."""
    from edgeshrink.bench.rt_executorch import quiet_native

    cfg = cfg or ExecuTorchConfig(precision="fp32")
    model = copy.deepcopy(model).eval()
    excluded: list[str] = []
    with quiet_native():
        from executorch.exir import to_edge_transform_and_lower

        if cfg.precision == "int8":
            model = _quantize(model, example, cfg, data)
        ep = _export(model, example)
        try:
            program = to_edge_transform_and_lower(ep, partitioner=[_partitioner(excluded)])
        except Exception as exc:  # noqa: BLE001 - lowering passes raise many kinds
            raise _fail("lower", exc) from None
        _check_kernels(program)
        notes = _delegation(program, excluded)  # before to_executorch rewrites the graph
        try:
            buffer = program.to_executorch().buffer
        except Exception as exc:  # noqa: BLE001
            raise _fail("serialize", exc) from None
    from edgeshrink.results import atomic_write_bytes

    atomic_write_bytes(out, buffer)
    return notes


@transform(ExecuTorchConfig)
def _build(cfg: ExecuTorchConfig, model: nn.Module, ctx: TransformContext) -> Artifact:
    TARGET.require()
    if not isinstance(model, nn.Module) or hasattr(model, "write_onnx"):
        raise TargetError("ExecuTorch builds from a PyTorch model; this task's model is an "
                          "ONNX graph.")  # fmt: skip
    data = None
    if cfg.precision == "int8":
        from edgeshrink.quant.ort import check_calibration

        data = ctx.task.calibration
        check_calibration(data, ctx)
    path = ctx.artifact_path(".pte")
    notes = build_pte(model, ctx.task.example_inputs(1), path, cfg=cfg, data=data)
    scheme = ("int8 activations (per-tensor affine), int8 weights (per-channel symmetric), "
              "PT2E + XNNPACKQuantizer" if cfg.precision == "int8" else "fp32")
    notes = {"format": "pte", "scheme": scheme, "batch": 1, **notes}
    if cfg.precision == "int8":
        notes.update(calibrator=cfg.calibrator, calibration_samples=min(cfg.calibration_samples,
                                                                   len(ctx.task.calibration)))
    return Artifact(path=path, model=model, precision=cfg.precision, runtime="executorch",
                    notes=notes)
