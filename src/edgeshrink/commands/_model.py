"""The options that bring a user's own model and data to ``study``, ``prune`` and
``quantize``: ``--model``, ``--arch``, ``--data``, ``--metric``, ``--input-size``, ``--mean``,
``--std``, ``--label-column``.

:func:`model_options` adds them to a command and hands the command one :class:`ModelSource`
(keyword ``source``); :func:`load_source_task` turns it and ``--task`` into a Task.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path

import typer

__all__ = ["ModelSource", "model_options", "load_source_task", "say_split", "DEFAULT_TASK"]

DEFAULT_TASK = "zoo:lenet5-mnist"


@dataclass(frozen=True)
class ModelSource:
    """What the user gave with ``--model`` and friends (all None: use ``--task``)."""

    model: Path | None = None
    arch: str | None = None
    data: Path | None = None
    metric: str | None = None
    input_size: str | None = None
    mean: str | None = None
    std: str | None = None
    label_column: str | None = None


_OPTIONS = {
    "model": (Path, typer.Option(None, help="Your trained model: .onnx, .pt2 (torch.export), "
                                 "TorchScript .pt, or a state dict .pt with --arch.")),
    "arch": (str, typer.Option(None, help="file.py:ClassOrFactory that builds the model a "
                               "state dict belongs to.")),
    "data": (Path, typer.Option(None, help="Data for --model: .npz (x, optional y), .csv "
                                "(features + optional label column) or a folder of images "
                                "with one sub-folder per class.")),
    "metric": (str, typer.Option(None, help="accuracy, top1-agreement, top5-agreement, cosine "
                                 "or mse (default: accuracy with class labels, else agreement "
                                 "with the original model).")),
    "input_size": (str, typer.Option(None, help="Resize images to H,W pixels (or N for NxN).")),
    "mean": (str, typer.Option(None, help="Per-channel mean subtracted from 0..1 pixels, "
                               "e.g. 0.485,0.456,0.406.")),
    "std": (str, typer.Option(None, help="Per-channel std dividing 0..1 pixels, "
                              "e.g. 0.229,0.224,0.225.")),
    "label_column": (str, typer.Option(None, help="CSV column holding the labels (default: "
                                       "label, target, y or class if present).")),
}


def model_options(command):
    """Decorator: add the ``--model`` options to a typer command, passed as ``source=``."""
    sig = inspect.signature(command)
    params = [p for p in sig.parameters.values() if p.name != "source"]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
             for name, (typ, opt) in _OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        source = ModelSource(**{name: kwargs.pop(name, None) for name in _OPTIONS})
        return command(*args, source=source, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=params + extra)
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params},
                               **{n: t for n, (t, _) in _OPTIONS.items()}}
    del wrapper.__wrapped__  # typer must read the signature above, not the command's
    return wrapper


def _floats(name: str, text: str | None) -> tuple[float, ...] | None:
    from edgeshrink.errors import UserError

    if text is None:
        return None
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        values = ()
    if not values:
        raise UserError(f"{name} must be comma-separated numbers, got {text!r}.")
    return values


def _size(text: str | None) -> tuple[int, int] | None:
    from edgeshrink.errors import UserError

    values = _floats("--input-size", text)
    if values is None:
        return None
    if len(values) not in (1, 2) or min(values) < 1 or any(v != int(v) for v in values):
        raise UserError(f"--input-size must be H,W or N in whole pixels, got {text!r}.")
    return (int(values[0]), int(values[-1]))


def load_source_task(task: str, source: ModelSource):
    """``--task`` (a zoo name or task file) or, when ``--model`` is given, a task built from
    the user's model and ``--data``; option mistakes are one sentence, before any work."""
    from edgeshrink.errors import UserError
    from edgeshrink.task import load_task

    if source.model is None:
        given = [f"--{n.replace('_', '-')}" for n in _OPTIONS if getattr(source, n) is not None]
        if given:
            raise UserError(f"{', '.join(given)} go with --model FILE (your own model).")
        return load_task(task)
    if task != DEFAULT_TASK:
        raise UserError("give either --task or --model, not both.")
    if source.data is None:
        raise UserError("--model needs --data (an .npz, a .csv, or a folder of images) to "
                        "calibrate and evaluate on.")
    from edgeshrink.byo.build import byo_task
    from edgeshrink.byo.metrics import metric_for
    from edgeshrink.byo.sources import DataOptions

    if source.metric is not None:
        metric_for(source.metric)  # an unknown name fails before the model is loaded
    opts = DataOptions(input_size=_size(source.input_size), mean=_floats("--mean", source.mean),
                       std=_floats("--std", source.std), label_column=source.label_column)
    _check_data_options(source)
    return byo_task(source.model, source.data, arch=source.arch, metric=source.metric,
                    data_opts=opts)


def say_split(task, source: ModelSource, steps, console) -> None:
    """For ``--model``: refuse steps the model kind cannot take, then say how the data was
    split (before any work, so that a refusal is the only line printed)."""
    if source.model is None:
        return
    from edgeshrink.byo.applicable import check_applicable

    check_applicable(steps, task.model)
    console.print(task.description, highlight=False, soft_wrap=True)


def _check_data_options(source: ModelSource) -> None:
    """Image options apply to an image folder, --label-column to a CSV: never ignored."""
    from edgeshrink.errors import UserError

    image_opts = [f"--{n.replace('_', '-')}" for n in ("input_size", "mean", "std")
                  if getattr(source, n) is not None]
    if image_opts and not source.data.is_dir():
        verb = "applies" if len(image_opts) == 1 else "apply"
        raise UserError(f"{', '.join(image_opts)} {verb} to a folder of images; {source.data} "
                        "is not one (reshape an .npz or .csv before saving it).")
    if source.label_column is not None and source.data.suffix != ".csv":
        raise UserError(f"--label-column applies to a .csv; {source.data} is not one "
                        "(an .npz keeps its labels under 'y').")
