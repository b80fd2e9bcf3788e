"""The Task contract: what edgeshrink needs to know about a user's model.

A task bundles a trained PyTorch model with its data splits, its metric and an example
input. Tasks come from the zoo (``zoo:lenet5-mnist``) or from a user's file
(``path/to/task.py:make_task``, a function with no arguments returning a :class:`Task`).

Example:
    >>> task = load_task("zoo:lenet5-digits")
    >>> task.metric.name
    'accuracy'
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeshrink.data import Dataset
from edgeshrink.errors import UserError

__all__ = ["Metric", "Task", "load_task", "accuracy_metric", "has_labels"]


@dataclass(frozen=True)
class Metric:
    """A metric over a whole evaluation set: ``fn(outputs, targets) -> value``.

    ``outputs`` is the model's first output stacked over the set (numpy); ``extras`` are
    secondary metrics reported beside the primary one (e.g. top-5 agreement, ROC AUC).
    ``unit`` is ``"%"`` for accuracies (0-100) so that drops read in points.
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True
    unit: str = "%"
    extras: dict[str, Callable[[np.ndarray, np.ndarray], float]] = field(default_factory=dict)

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(self.fn(outputs, targets))

    def all(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        values = {self.name: self(outputs, targets)}
        values.update({k: float(f(outputs, targets)) for k, f in self.extras.items()})
        return values

    def drop(self, baseline: float, value: float) -> float:
        """Points lost against the baseline (positive = worse), whatever the direction."""
        return baseline - value if self.higher_is_better else value - baseline


def _accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    return 100.0 * float(np.mean(outputs.argmax(axis=1) == targets))


accuracy_metric = Metric("accuracy", _accuracy)


@dataclass
class Task:
    """A trained model, its data and its metric.

    Attributes:
        name: the spec it was loaded from, e.g. ``zoo:lenet5-mnist``.
        model: the trained FP32 model, in eval mode.
        train: data for fine-tuning after pruning / QAT (None: the task cannot fine-tune).
        calibration: a small set for PTQ calibration and one-shot pruning statistics.
        eval: the held-out set every candidate is scored on.
        metric: how outputs are scored against ``eval.targets``.
        input_names: the ONNX input names, one per array of ``Dataset.inputs``.
        dynamic_axes: extra dynamic axes for export beyond the batch axis (e.g. sequence).
        seed: the seed that made the split and trained the model.
        description: one line for reports.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` that fine-tuning minimises
            instead of the default (cross-entropy on labels, KL to reference logits), e.g.
            ``torch.nn.functional.mse_loss`` for a regression model; it replaces the
            distillation loss too.
    """

    name: str
    model: nn.Module
    train: Dataset | None
    calibration: Dataset
    eval: Dataset
    metric: Metric = accuracy_metric
    input_names: tuple[str, ...] = ("input",)
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    seed: int = 0
    description: str = ""
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        from edgeshrink.byo.exported import editable_module, is_exported_module

        if is_exported_module(self.model):  # its module() refuses eval(): rebuild it
            self.model = editable_module(self.model)
        self.model.eval()
        if len(self.input_names) != len(self.eval.inputs):
            raise UserError(
                f"task {self.name}: {len(self.input_names)} input names for "
                f"{len(self.eval.inputs)} input arrays."
            )

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """The first ``batch`` evaluation samples, as the model's positional inputs."""
        return tuple(torch.from_numpy(np.ascontiguousarray(a[:batch])) for a in self.eval.inputs)


def has_labels(task: Task | None) -> bool:
    """Whether ``task`` has a non-empty training split with labels (1-D targets), so that
    pruned candidates can be fine-tuned; a split whose targets are the FP32 model's logits
    (the pretrained tasks) serves distillation only.

    Example:
        >>> has_labels(load_task("zoo:lenet5-digits")), has_labels(None)  # doctest: +SKIP
        (True, False)
    """
    train = getattr(task, "train", None)
    return train is not None and len(train) > 0 and train.targets.ndim == 1


def load_task(spec: str) -> Task:
    """Resolve ``zoo:NAME`` or ``path/to/file.py:function`` into a :class:`Task`."""
    if spec.startswith("zoo:"):
        from edgeshrink import zoo

        return zoo.load(spec[len("zoo:") :])
    path_text, sep, func_name = spec.rpartition(":")
    if not sep or not path_text.endswith(".py"):
        raise UserError(
            f"task {spec!r} is neither zoo:NAME nor path/to/file.py:function "
            "(see `edgeshrink tasks` for the zoo)."
        )
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"task file {path} does not exist.")
    module_name = f"_edgeshrink_task_{abs(hash(path.resolve()))}"
    spec_obj = importlib.util.spec_from_file_location(module_name, path)
    if spec_obj is None or spec_obj.loader is None:
        raise UserError(f"task file {path} cannot be imported as Python.")
    module = importlib.util.module_from_spec(spec_obj)
    sys.modules[module_name] = module
    with _user_code(path, "importing it"):
        spec_obj.loader.exec_module(module)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise UserError(f"task file {path} has no function {func_name!r}.")
    _check_no_arguments(factory, path, func_name)
    with _user_code(path, f"running {func_name}()"):
        task = factory()
    if not isinstance(task, Task):
        raise UserError(f"{spec} returned {type(task).__name__}, not an edgeshrink Task.")
    return task


def _check_no_arguments(factory: Callable, path: Path, name: str) -> None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: let the call say
        return
    needed = [p.name for p in params if p.default is p.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if needed:
        raise UserError(f"task function {name} in {path} needs argument(s) "
                        f"{', '.join(needed)}; a task function takes none and returns a Task.")


@contextlib.contextmanager
def _user_code(path: Path, doing: str) -> Iterator[None]:
    """Turn an exception raised by a user's task file into one sentence naming the file, the
    line and the exception (``--debug`` keeps the traceback)."""
    try:
        yield
    except UserError:
        raise
    except (Exception, SystemExit) as exc:
        if os.environ.get("EDGESHRINK_DEBUG"):
            raise
        raise UserError(f"task file {path} failed while {doing}: {_where(exc, path)}"
                        f"{type(exc).__name__}: {_one_line(exc)} (--debug shows the "
                        "traceback).") from None


def _where(exc: BaseException, path: Path) -> str:
    """``line N: `` of the deepest frame in ``path`` (the syntax error's line for those)."""
    target = os.path.realpath(path)
    if isinstance(exc, SyntaxError) and exc.lineno and os.path.realpath(
            exc.filename or "") == target:
        return f"line {exc.lineno}: "
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
             if os.path.realpath(f.filename) == target]
    return f"line {lines[-1]}: " if lines else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
