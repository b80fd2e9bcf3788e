"""``edgeshrink init-task FILE``: write a task template to edit for your own model."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def init_task(
    path: Path = typer.Argument(..., help="The task file to write, e.g. my_task.py."),
) -> None:
    """Write a runnable task template (model, data, metric, fine-tuning loss) to PATH."""
    from importlib.resources import files

    from edgeshrink.errors import UserError
    from edgeshrink.results import atomic_write_text

    if path.suffix != ".py":
        raise UserError(f"the task file must end in .py, got {path}.")
    if path.exists():
        raise UserError(f"{path} exists; edgeshrink will not overwrite it (choose another name).")
    text = files("edgeshrink.byo").joinpath("task_template.py").read_text()
    atomic_write_text(path, text.replace("THIS_FILE.py", path.name))
    print(f"wrote {path}; edit the marked places, then: edgeshrink study --task {path}:make_task")


def register(app: typer.Typer) -> None:
    app.command("init-task")(init_task)
