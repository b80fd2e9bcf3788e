"""``edgeshrink prune``: apply one pruning method (any registered config of the pruning
family) or a recipe to a task's model; write the ONNX artifact, a ``.pt2`` that loads
without the model's class, and a ``.pt`` state dict where no tensor changed shape.

Example::

    edgeshrink prune --task zoo:lenet300-mnist --method unstructured --sparsity 0.9 \\
        --finetune-epochs 3 --distill 0.5 --out lenet300-90.onnx
    edgeshrink prune --task zoo:lenet5-mnist --method wanda --set pattern=2:4 --out l5-24.onnx
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from edgeshrink.commands._model import DEFAULT_TASK, load_source_task, model_options, say_split
from edgeshrink.commands._recipe import family_kinds, parse_sets

__all__ = ["register"]


def pruning_kinds() -> list[str]:
    """Kinds of every registered config of the pruning family."""
    return family_kinds("pruning")


def build_recipe(method: str | None, sparsity: float | None, sets: list[str],
                 finetune_epochs: int, distill: float, recipe_path: Path | None) -> list:
    """The recipe ``edgeshrink prune`` applies, validated; user mistakes are UserErrors."""
    from edgeshrink.config import (
        CONFIGS,
        check_artifact_last,
        check_range,
        config_from_dict,
        recipe_from_yaml,
    )
    from edgeshrink.errors import UserError
    from edgeshrink.train import FinetuneConfig

    if sparsity is not None:
        check_range("--sparsity", sparsity, 0.0, 1.0, high_open=True)
    check_range("--distill", distill, 0.0, 1.0)
    if distill and not finetune_epochs:
        raise UserError("--distill needs --finetune-epochs N (distillation happens while fine-tuning).")
    if recipe_path is not None:
        if method or sets or sparsity is not None:
            raise UserError("give either --recipe or --method/--sparsity/--set, not both.")
        from edgeshrink.userfiles import read_text

        recipe = recipe_from_yaml(read_text(recipe_path, "recipe file"),
                                  f"recipe file {recipe_path}")
        check_artifact_last(recipe, f"recipe file {recipe_path}")
        if not recipe:
            raise UserError(f"recipe file {recipe_path} holds no transforms.")
    else:
        kinds = pruning_kinds()
        if method is None:
            raise UserError(f"prune needs --method (one of {', '.join(kinds)}) or --recipe FILE.")
        if method not in kinds:
            raise UserError(f"unknown pruning method {method!r}; choose one of {', '.join(kinds)}.")
        fields = {f.name for f in dataclasses.fields(CONFIGS[method])}
        data = {"kind": method, **parse_sets(sets, CONFIGS[method])}
        if sparsity is not None:
            # the field that means "fraction removed": structured pruning calls it ratio
            key = next((k for k in ("sparsity", "final", "ratio") if k in fields), None)
            if key is None:
                raise UserError(f"{method} has no sparsity setting; use --set with one of "
                                f"{', '.join(sorted(fields))}.")
            data[key] = sparsity
        recipe = [config_from_dict(data)]
    if finetune_epochs:
        recipe.append(FinetuneConfig(epochs=finetune_epochs, distill=distill))
    return recipe


def _torch_metric(model, task) -> float:
    from edgeshrink.measure.model_stats import torch_outputs

    return task.metric(torch_outputs(model, task.eval, 256), task.eval.targets)


def _facts(model) -> tuple[int, int, float]:
    from edgeshrink.measure.model_stats import count_params, prunable_weights, weight_sparsity

    zeros = sum(int((w == 0).sum()) for w in prunable_weights(model).values())
    return count_params(model), zeros, weight_sparsity(model)


@model_options
def prune(
    task: str = typer.Option(DEFAULT_TASK, help="zoo:NAME or path/to/file.py:function"),
    method: str = typer.Option(None, help="Pruning kind, e.g. unstructured, nm, wanda, "
                               "sparsegpt, iterative, gradual, sensitivity, structured."),
    sparsity: float = typer.Option(None, help="Fraction removed, in [0, 1) (weights; channels "
                                   "for structured)."),
    set_: list[str] = typer.Option([], "--set", help="Config field as key=value (repeatable)."),
    finetune_epochs: int = typer.Option(0, min=0, help="Epochs of retraining after pruning."),
    distill: float = typer.Option(0.0, help="Distillation weight of that retraining (0..1)."),
    recipe: Path = typer.Option(None, help="YAML list of transform configs instead of --method."),
    out: Path = typer.Option(..., help="Where to write the ONNX file (a .pt2 that loads "
                             "without your class goes beside it, and a .pt state dict when "
                             "no tensor changed shape)."),
    source=None,
) -> None:
    """Prune a task's model once; print parameters, sparsity and metric before -> after."""
    import tempfile

    from rich.console import Console

    from edgeshrink.byo.exported import save_pruned
    from edgeshrink.errors import UserError
    from edgeshrink.results import atomic_write_bytes
    from edgeshrink.targets.onnxruntime import onnx_outputs
    from edgeshrink.transforms import TransformContext, apply_recipe

    if out.suffix != ".onnx":
        raise UserError(f"--out must name an .onnx file, got {out}.")
    steps = build_recipe(method, sparsity, set_, finetune_epochs, distill, recipe)
    console = Console(stderr=True)
    with console.status(f"loading {source.model or task}"):
        the_task = load_source_task(task, source)
    say_split(the_task, source, steps, console)
    before = (*_facts(the_task.model), _torch_metric(the_task.model, the_task))
    with tempfile.TemporaryDirectory() as tmp, console.status("pruning"):
        ctx = TransformContext(task=the_task, workdir=Path(tmp), name=out.stem,
                               seed=the_task.seed)
        art = apply_recipe(steps, ctx)
        value = the_task.metric(onnx_outputs(art.path, the_task.eval), the_task.eval.targets)
        written = save_pruned(art.model, the_task.model, the_task.example_inputs(), out)
        atomic_write_bytes(out, art.path.read_bytes())
    after = (*_facts(art.model), value)
    _print(Console(), the_task, steps, before, after, [out, *written])


def _print(console, task, steps, before, after, written: list[Path]) -> None:
    from rich.table import Table

    unit = task.metric.unit
    table = Table("", "before", "after", title=" + ".join(s.kind for s in steps))
    table.add_row("parameters", f"{before[0]:,}", f"{after[0]:,}")
    table.add_row("non-zero parameters", f"{before[0] - before[1]:,}", f"{after[0] - after[1]:,}")
    table.add_row("sparsity", f"{100 * before[2]:.1f} %", f"{100 * after[2]:.1f} %")
    table.add_row(f"{task.metric.name} ({unit})", f"{before[3]:.2f} (PyTorch)",
                  f"{after[3]:.2f} (ONNX Runtime)")
    console.print(table)
    console.print(f"wrote {', '.join(map(str, written))}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(prune)
