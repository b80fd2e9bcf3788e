"""``edgeshrink quantize``: one quantization method (any registered config of the
quantization family) or a recipe, applied to a task's model and written as a deployable file.

Example::

    edgeshrink quantize --task zoo:lenet5-mnist --method int8_static --set calibrator=mse \\
        --out lenet5-int8.onnx
    edgeshrink quantize --task zoo:minilm --method int4_weight_only --set group_size=32 \\
        --out minilm-int4.onnx
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeshrink.commands._model import DEFAULT_TASK, load_source_task, model_options, say_split
from edgeshrink.commands._recipe import family_kinds, parse_sets

__all__ = ["register"]


def build_recipe(method: str | None, sets: list[str], recipe_path: Path | None) -> list:
    """The recipe ``edgeshrink quantize`` applies; it must end in a deployable artifact."""
    from edgeshrink.config import CONFIGS, check_artifact_last, config_from_dict, recipe_from_yaml
    from edgeshrink.errors import UserError

    if recipe_path is not None:
        if method or sets:
            raise UserError("give either --recipe or --method/--set, not both.")
        from edgeshrink.userfiles import read_text

        recipe = recipe_from_yaml(read_text(recipe_path, "recipe file"),
                                  f"recipe file {recipe_path}")
        check_artifact_last(recipe, f"recipe file {recipe_path}")
    else:
        kinds = family_kinds("quantization")
        if method is None:
            raise UserError(f"quantize needs --method (one of {', '.join(kinds)}) or --recipe "
                            "FILE.")
        if method not in kinds:
            raise UserError(f"unknown quantization method {method!r}; choose one of "
                            f"{', '.join(kinds)}.")
        recipe = [config_from_dict({"kind": method, **parse_sets(sets, CONFIGS[method])})]
    if not recipe or recipe[-1].stage != "artifact":
        raise UserError("a quantization recipe must end in a quantization method that writes "
                        "a deployable file (e.g. int8_static, int8_dynamic, fp16).")
    return recipe


@model_options
def quantize(
    task: str = typer.Option(DEFAULT_TASK, help="zoo:NAME or path/to/file.py:function"),
    method: str = typer.Option(None, help="Quantization kind, e.g. int8_static, int8_dynamic, "
                               "fp16, int4_weight_only, qat, lowbit, kmeans."),
    set_: list[str] = typer.Option([], "--set", help="Config field as key=value (repeatable)."),
    recipe: Path = typer.Option(None, help="YAML list of transform configs instead of --method."),
    out: Path = typer.Option(..., help="Where to write the ONNX file."),
    source=None,
) -> None:
    """Quantize a task's model once; print size and metric of FP32 -> quantized, both in ORT."""
    import tempfile
    import zlib

    from rich.console import Console

    from edgeshrink.errors import UserError
    from edgeshrink.export import export_onnx
    from edgeshrink.measure.artifact import file_sizes
    from edgeshrink.results import atomic_write_bytes
    from edgeshrink.targets import target_for
    from edgeshrink.targets.onnxruntime import onnx_outputs
    from edgeshrink.transforms import TransformContext, apply_recipe

    if out.suffix != ".onnx":
        raise UserError(f"--out must name an .onnx file, got {out}.")
    steps = build_recipe(method, set_, recipe)
    console = Console(stderr=True)
    with console.status(f"loading {source.model or task}"):
        the_task = load_source_task(task, source)
    say_split(the_task, source, steps, console)
    with tempfile.TemporaryDirectory() as tmp, console.status("quantizing"):
        fp32 = export_onnx(the_task.model, the_task.example_inputs(), Path(tmp) / "fp32.onnx",
                           input_names=the_task.input_names, dynamic_axes=the_task.dynamic_axes)
        art = apply_recipe(steps, TransformContext(task=the_task, workdir=Path(tmp),
                                                   name=out.stem, seed=the_task.seed))
        ev, targets = the_task.eval, the_task.eval.targets
        before = (file_sizes(fp32), the_task.metric(onnx_outputs(fp32, ev), targets))
        target = target_for(art)
        outputs = target.outputs(art, ev)
        shipped = target.shipped_files(art)  # OpenVINO: the IR pair, not the ONNX it came from
        blob = b"".join(p.read_bytes() for p in shipped)
        sizes = (len(blob), len(zlib.compress(blob, 9)))
        for p in shipped:
            atomic_write_bytes(out.with_suffix(p.suffix), p.read_bytes())
        out = out.with_suffix(shipped[0].suffix)
        after = (sizes, the_task.metric(outputs, targets))
    _print(Console(), the_task, steps, art, before, after, out)


def _print(console, task, steps, art, before, after, out: Path) -> None:
    from rich.table import Table

    table = Table("", "FP32", art.precision, title=" + ".join(s.kind for s in steps))
    table.add_row("file bytes", f"{before[0][0]:,}", f"{after[0][0]:,}")
    table.add_row("deflated bytes", f"{before[0][1]:,}", f"{after[0][1]:,}")
    if art.size_encoded_bytes:
        table.add_row("encoded bytes", "", f"{art.size_encoded_bytes:,}")
    how = {"simulated": "simulated", "openvino": "OpenVINO"}.get(art.runtime, "ONNX Runtime")
    table.add_row(f"{task.metric.name} ({task.metric.unit})", f"{before[1]:.3f} (ONNX Runtime)",
                  f"{after[1]:.3f} ({how})")
    console.print(table)
    console.print(f"wrote {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(quantize)
