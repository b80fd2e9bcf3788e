"""Facts about a PyTorch model: parameters, MACs, activation volume, sparsity, outputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "count_params", "count_macs", "weight_sparsity", "prunable_weights", "torch_outputs",
]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weight tensors of Conv/Linear layers (what pruning acts on), by parameter name."""
    out = {}
    for mname, module in model.named_modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            out[f"{mname}.weight" if mname else "weight"] = module.weight
    return out


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries over all Conv/Linear weights."""
    weights = prunable_weights(model).values()
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


def count_macs(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> tuple[int, int]:
    """(MACs, activation elements) of one forward pass on ``example_inputs`` (batch 1).

    MACs come from torch's FLOP counter (matmul, conv, attention: FLOPs / 2), so
    functional matmuls inside attention count too. Activation elements are the outputs of
    every leaf module, a proxy for the bytes of activations moved.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if hasattr(model, "graph_macs"):  # a user's ONNX model runs outside PyTorch
        return model.graph_macs()

    elems = 0

    def hook(_m, _inp, out):
        nonlocal elems
        if isinstance(out, torch.Tensor):
            elems += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()  # TorchScript takes no hooks
               if not list(m.children()) and not isinstance(m, torch.jit.ScriptModule)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops() // 2), int(elems)


def torch_outputs(model: nn.Module, data, batch_size: int = 128) -> np.ndarray:
    """First output of ``model`` over the ``edgeshrink.data.Dataset`` ``data``, stacked (numpy).

    The PyTorch counterpart of ``measure.artifact.onnx_outputs``; the model is run as it is
    (call ``.eval()`` first where that matters).

    Example:
        >>> torch_outputs(task.model, task.eval).shape  # doctest: +SKIP
        (1000, 10)
    """
    outs = []
    with torch.no_grad():
        for xs, _ in data.batches(batch_size):
            out = model(*xs)
            outs.append((out[0] if isinstance(out, tuple | list) else out).numpy())
    return np.concatenate(outs)
