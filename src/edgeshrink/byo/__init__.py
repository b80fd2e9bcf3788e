"""Bring your own model: a model file and a data file become a Task.

``edgeshrink study --model my.onnx --data digits.npz`` (also ``.pt2``, TorchScript, or a
state dict with ``--arch file.py:Class``). See :mod:`edgeshrink.byo.models` for the model
formats, :mod:`edgeshrink.byo.sources` for the data formats, :mod:`edgeshrink.byo.build`
for the splits and :mod:`edgeshrink.byo.applicable` for what each model kind supports.

Example:
    >>> from edgeshrink.byo import byo_task
    >>> task = byo_task("my.pt2", "digits.npz")  # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["byo_task", "load_model", "read_data", "announce", "default_plan_name"]


def byo_task(*args, **kwargs):
    """See :func:`edgeshrink.byo.build.byo_task`."""
    from edgeshrink.byo.build import byo_task as build

    return build(*args, **kwargs)


def load_model(*args, **kwargs):
    """See :func:`edgeshrink.byo.models.load_model`."""
    from edgeshrink.byo.models import load_model as load

    return load(*args, **kwargs)


def read_data(*args, **kwargs):
    """See :func:`edgeshrink.byo.sources.read_data`."""
    from edgeshrink.byo.sources import read_data as read

    return read(*args, **kwargs)


def default_plan_name(task, plan: str | None) -> str | None:
    """The plan a study uses: an ONNX model without ``--plan`` gets every quantization
    candidate (those that need PyTorch are listed as not applicable, with the reason)."""
    from edgeshrink.byo.models import model_kind

    if plan is None and model_kind(task.model) == "onnx":
        return "quantization"
    return plan


def announce(task, plan: str | None, console, *, sensitivity: bool = False) -> str | None:
    """Print how the data was split, and return the plan to use (see
    :func:`default_plan_name`); ``--sensitivity`` on a model without PyTorch layers is
    refused."""
    from edgeshrink.byo.applicable import NotApplicable
    from edgeshrink.byo.models import model_kind

    kind = model_kind(task.model)
    if sensitivity and kind in ("onnx", "torchscript"):
        raise NotApplicable(f"--sensitivity prunes and quantizes one PyTorch layer at a time, "
                            f"and a{'n' if kind == 'onnx' else ''} {kind} model has no PyTorch "
                            "layers to reach; drop --sensitivity or give a .pt2 or a state "
                            "dict with --arch.")
    console.print(task.description, highlight=False, soft_wrap=True)
    chosen = default_plan_name(task, plan)
    if chosen != plan:
        console.print(f"plan: {chosen} (every quantization technique; an ONNX model cannot "
                      "be pruned or retrained)", highlight=False)
    return chosen
