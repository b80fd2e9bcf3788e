"""``torch.export`` programs as ordinary editable PyTorch modules.

``ExportedProgram.module()`` returns a graph module that refuses ``eval()``/``train()`` and
calls its layers as ATen functions (``aten.linear(x, fc.weight, fc.bias)``), so pruning,
which acts on ``nn.Linear``/``nn.Conv2d`` layers, would find none and change nothing.
:func:`editable_module` rebuilds the graph with those calls as real ``nn.Linear`` /
``nn.ConvNd`` / ``nn.BatchNorm`` modules holding the same tensors, under
the names the user's model had (``fc``, ``features.0``), and drops the input guards. The
result computes the same function and every technique that edits layers applies to it.
Batch-norm statistics stay as exported (the graph was captured in eval mode).

Example:
    >>> gm = editable_module(torch.export.load("model.pt2"))  # doctest: +SKIP
    >>> gm.eval()(x)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import fx, nn

__all__ = ["editable_module", "is_exported_module", "save_exported"]

_aten = torch.ops.aten
# Copying the graph's pytree in/out specs (every candidate works on a deep copy) makes torch
# 2.13 warn about its own LeafSpec check once per copy: noise in every study's output.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning)


def is_exported_module(model: object) -> bool:
    """Whether ``model`` is an ``ExportedProgram`` or the module ``.module()`` made of one."""
    if isinstance(model, torch.export.ExportedProgram):
        return True
    return any(c.__name__ == "_StatefulGraphModule" for c in type(model).__mro__)


def editable_module(program) -> fx.GraphModule:
    """An :class:`fx.GraphModule` with real layer modules from an ``ExportedProgram``
    (or its ``.module()``) that accepts ``eval()``/``train()``."""
    gm = program.module() if isinstance(program, torch.export.ExportedProgram) else program
    root = nn.Module()
    graph = fx.Graph()
    graph._codegen = copy.deepcopy(gm.graph._codegen)  # pytree in/out: a tensor, not (tensor,)
    env: dict[fx.Node, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target.startswith("_guards"):
            continue  # shape guards of the export: the study runs other batch sizes
        if node.op == "get_attr":
            _copy_attr(gm, root, node.target)
        layer = _as_layer(gm, node)
        if layer is not None:
            name, module, x = layer
            _set_module(root, name, module)
            env[node] = graph.call_module(name, (env[x],))
            continue
        env[node] = graph.node_copy(node, lambda n: env[n])
    out = fx.GraphModule(root, graph, class_name="ExportedModel")
    out.graph.eliminate_dead_code()
    out.recompile()
    return out.eval()


def _copy_attr(gm: nn.Module, root: nn.Module, target: str) -> None:
    *path, leaf = target.split(".")
    src, dst = gm, root
    for part in path:
        src = getattr(src, part)
        if not hasattr(dst, part):
            dst.add_module(part, nn.Module())
        dst = getattr(dst, part)
    value = getattr(src, leaf)
    if isinstance(value, nn.Parameter):
        dst.register_parameter(leaf, value)
    elif isinstance(value, torch.Tensor):
        dst.register_buffer(leaf, value)
    else:
        setattr(dst, leaf, value)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    *path, leaf = name.split(".")
    parent = root
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, module)  # replaces the plain container that held the tensors


def _attr(gm: nn.Module, arg) -> torch.Tensor | None:
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        obj = gm
        for part in arg.target.split("."):
            obj = getattr(obj, part)
        return obj
    return None


def _owner(arg: fx.Node) -> str:
    return arg.target.rpartition(".")[0]


def _as_layer(gm: nn.Module, node: fx.Node):
    """``(module name, module, input node)`` when ``node`` is a layer call on constant
    weights that owns them alone (``fc.weight``, ``fc.bias`` under one ``fc``)."""
    if node.op != "call_function":
        return None
    args = list(node.args) + [None] * 9
    w, b = _attr(gm, args[1]), _attr(gm, args[2]) if args[2] is not None else None
    if not isinstance(w, nn.Parameter) or (args[2] is not None and b is None):
        return None
    name = _owner(args[1])
    if not name or (b is not None and _owner(args[2]) != name) or node.kwargs:
        return None
    if node.target == _aten.linear.default:
        m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    elif node.target in (_aten.conv1d.default, _aten.conv2d.default):
        m = _conv(node, w, b, args)
    elif node.target == _aten.batch_norm.default and args[5] is False:
        m = _batch_norm(gm, node, w, b, args)
    else:
        return None
    if m is None:
        return None
    m.weight = w
    if b is not None:
        m.bias = b
    return name, m, node.args[0]


def _conv(node: fx.Node, w, b, args):
    stride, padding, dilation, groups = args[3] or 1, args[4] or 0, args[5] or 1, args[6] or 1
    if isinstance(padding, str):
        return None
    cls = nn.Conv1d if node.target == _aten.conv1d.default else nn.Conv2d
    return cls(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=stride,
               padding=padding, dilation=dilation, groups=groups, bias=b is not None)


def _batch_norm(gm: nn.Module, node: fx.Node, w, b, args):
    mean, var = _attr(gm, args[3]), _attr(gm, args[4])
    if b is None or mean is None or var is None or w.dim() != 1:
        return None
    rank = node.args[0].meta.get("val").dim() if "val" in node.args[0].meta else 4
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d}.get(rank)
    if cls is None:
        return None
    m = cls(w.shape[0], eps=args[7], momentum=args[6]).eval()
    m.running_mean, m.running_var = mean, var
    return m


def save_exported(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], path,
                  *, dynamic_batch: bool = True) -> None:
    """Save ``model`` as a ``torch.export`` program (``.pt2``): it loads with
    ``torch.export.load(path).module()`` without the class that defined it."""
    import io

    from edgeshrink.results import atomic_write_bytes

    dims = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dims = tuple({0: batch} for _ in example_inputs)
    x = tuple(t.repeat(2, *[1] * (t.dim() - 1)) for t in example_inputs)  # batch 1 specialises
    try:
        prog = torch.export.export(model.eval(), x, dynamic_shapes=dims)
    except Exception as exc:  # e.g. data-dependent control flow that export cannot capture
        from edgeshrink.errors import UserError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"torch.export cannot capture the pruned model for {path} "
                        f"({first}).") from None
    buf = io.BytesIO()
    torch.export.save(prog, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_pruned(model: nn.Module, original: nn.Module, example_inputs, onnx_path
                ) -> list:
    """The PyTorch files ``edgeshrink prune`` writes beside ``onnx_path``: always a ``.pt2``
    (``torch.export``; it loads without the model's class), and a ``.pt`` state dict only
    where every tensor kept its shape, so that it still loads into the user's class."""
    import io
    from pathlib import Path

    from edgeshrink.results import atomic_write_bytes

    onnx_path = Path(onnx_path)
    written = []
    pt2 = onnx_path.with_suffix(".pt2")
    save_exported(model, example_inputs, pt2)
    written.append(pt2)
    before = {k: tuple(v.shape) for k, v in original.state_dict().items()}
    after = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    pt = onnx_path.with_suffix(".pt")
    if before == after:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write_bytes(pt, buf.getvalue())
        written.append(pt)
    elif pt.exists():
        pt.unlink()  # a previous run's state dict would no longer describe this model
    return written
