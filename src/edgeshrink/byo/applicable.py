"""Which techniques apply to which kind of model, and why not where they do not.

A technique that edits PyTorch layers (every pruning method, QAT, low-bit and non-uniform
weight formats, SmoothQuant, ...) needs ``nn.Linear``/``nn.Conv`` modules to edit. An ONNX
graph has none, and a TorchScript model hides them in compiled code: run there, such a
technique would change nothing and report a "pruned" model at 0 % sparsity. It is refused
in one sentence instead, which a study lists as the candidate's reason for not being built.

Example:
    >>> check_applicable([StaticInt8Config()], onnx_module)  # passes
    >>> check_applicable([UnstructuredConfig(0.5)], onnx_module)  # raises NotApplicable
"""

from __future__ import annotations

from edgeshrink.errors import UserError

__all__ = ["NotApplicable", "check_applicable", "ONNX_KINDS", "reason"]

# Techniques that start from the model's ONNX graph (quant/ort.py, quant/int4.py):
# they work on a user's .onnx file as it is.
ONNX_KINDS = frozenset({"int8_static", "int8_dynamic", "fp16", "int4_weight_only"})
# TorchScript exports to ONNX, but its layers are compiled code, not nn.Linear/nn.Conv
# modules, and a copy of it cannot be trained (torch.optim: "can't optimize a non-leaf Tensor").
TORCHSCRIPT_KINDS = ONNX_KINDS


class NotApplicable(UserError):
    """A technique that cannot act on this kind of model (the message says why)."""


def reason(kind: str, model_kind: str) -> str | None:
    """Why technique ``kind`` cannot act on a ``model_kind`` model, or None if it can."""
    if model_kind == "onnx" and kind not in ONNX_KINDS:
        return (f"not applicable: {kind} changes PyTorch layers (or trains), and an ONNX "
                "model has no PyTorch layers; give the model as a torch.export .pt2 or a "
                "state dict with --arch to use it.")
    if model_kind == "torchscript" and kind not in TORCHSCRIPT_KINDS:
        return (f"not applicable: {kind} needs the model's nn.Linear/nn.Conv modules, which a "
                "TorchScript model hides in compiled code (pruning it would change nothing); "
                "give the model as a torch.export .pt2 or a state dict with --arch to use it.")
    return None


def check_applicable(recipe, model) -> None:
    """Raise :class:`NotApplicable` for the first step of ``recipe`` that cannot act on
    ``model``."""
    from edgeshrink.byo.models import model_kind

    kind = model_kind(model)
    for cfg in recipe:
        why = reason(cfg.kind, kind)
        if why:
            raise NotApplicable(why)
