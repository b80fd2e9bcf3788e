"""Recipes: an ordered list of transform configs applied to a copy of a task's model.

A transform handler is registered for its config class with :func:`transform`:

* ``stage == "model"``: ``handler(cfg, model, ctx) -> model`` (pruning, fine-tuning, ...).
* ``stage == "artifact"``: ``handler(cfg, model, ctx) -> Artifact`` (INT8/FP16/INT4 export,
  simulated formats). It must be the last step of a recipe.

A recipe without an artifact step ends in a plain FP32 ONNX export. This is the
torchao ``quantize_`` pattern: a dict from config class to handler, no framework.

Example:
    >>> ctx = TransformContext(task=task, workdir=workdir)
    >>> art = apply_recipe([UnstructuredConfig(0.8), FinetuneConfig()], ctx)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgeshrink.config import Config
from edgeshrink.errors import UserError

__all__ = [
    "Artifact", "TransformContext", "transform", "apply_recipe", "load_handlers", "HANDLERS",
]

HANDLERS: dict[type[Config], Callable[..., Any]] = {}


@dataclass
class Artifact:
    """What a recipe produced: the deployable file and how it runs.

    Attributes:
        path: the ONNX file that is measured (for ``simulated`` candidates: a dense
            decoded file that ONNX Runtime runs at load time).
        model: the PyTorch model the artifact came from (pruned, FP32), or its simulation.
        precision: weight precision that ships (``fp32``, ``fp16``, ``int8``, ``int4``, ...).
        runtime: ``onnxruntime``, ``openvino`` (the shipped file is the IR in
            ``notes["ir"]``), or ``simulated`` when no runtime executes the format.
        size_encoded_bytes: bytes of the packed/encoded storage form, where one exists.
        simulate: ``fn(inputs) -> outputs`` giving the metric where ONNX Runtime on ``path``
            does not (``simulated`` and ``openvino`` candidates).
        notes: facts for the report (quantization format, calibrator, ...).
    """

    path: Path
    model: nn.Module
    precision: str = "fp32"
    runtime: str = "onnxruntime"
    size_encoded_bytes: int | None = None
    simulate: Callable | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class TransformContext:
    """What a handler may use besides its config and model. ``cpu_flags``: the CPU the
    file is built for (a device profile's flags); ``None`` means this machine's.
    ``device``: the name of the device profile the file is built for (``study --device``),
    which its notes name as the machine that decided its format."""

    task: Any  # edgeshrink.task.Task
    workdir: Path
    name: str = "candidate"
    seed: int = 0
    teacher: nn.Module | None = None
    on_step: Callable[[str], None] | None = None
    cpu_flags: tuple[str, ...] | None = None
    device: str | None = None

    def artifact_path(self, suffix: str = ".onnx") -> Path:
        """``workdir/NAME.onnx`` with characters unsafe in file names replaced by ``_``."""
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", self.name)
        return self.workdir / f"{safe}{suffix}"


def transform(config_cls: type[Config]):
    """Decorator: register ``handler`` for ``config_cls``."""

    def wrap(handler):
        HANDLERS[config_cls] = handler
        return handler

    return wrap


def load_handlers() -> None:
    """Import the technique packages, which registers their configs and handlers."""
    from edgeshrink.config import load_kinds
    from edgeshrink.targets import load_builders

    load_kinds()
    load_builders()


def apply_recipe(recipe: list[Config], ctx: TransformContext) -> Artifact:
    """Apply ``recipe`` to a copy of ``ctx.task.model``; always ends in an :class:`Artifact`."""
    from edgeshrink.byo.applicable import check_applicable
    from edgeshrink.export import export_onnx

    load_handlers()
    check_applicable(recipe, ctx.task.model)  # refuse, in one sentence, what would do nothing
    model = copy.deepcopy(ctx.task.model)
    ctx.teacher = ctx.teacher or ctx.task.model
    for i, cfg in enumerate(recipe):
        if ctx.on_step:
            ctx.on_step(cfg.kind)
        handler = HANDLERS.get(type(cfg))
        if handler is None:
            raise UserError(f"no transform is registered for {cfg.kind!r}.")
        if cfg.stage == "artifact":
            if i != len(recipe) - 1:
                raise UserError(f"{cfg.kind} produces a deployable file and must end the recipe.")
            return handler(cfg, model, ctx)
        model = handler(cfg, model, ctx)
    path = export_onnx(
        model, ctx.task.example_inputs(), ctx.artifact_path(),
        input_names=ctx.task.input_names, dynamic_axes=ctx.task.dynamic_axes,
    )
    return Artifact(path=path, model=model)
