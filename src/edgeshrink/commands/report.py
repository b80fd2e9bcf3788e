"""``edgeshrink report RUN``: rebuild RUN/report.html (and its PNGs) from RUN/results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeshrink.errors import UserError

__all__ = ["register"]


def report(
    run: Path = typer.Argument(..., help="The study's folder, e.g. runs/demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the summary table."),
) -> None:
    """Write RUN/report.html: plots of the trade-off, every candidate, the recommendation."""
    from rich.console import Console

    from edgeshrink.report import print_summary, write_report
    from edgeshrink.results import load_run

    if not run.is_dir():
        raise UserError(f"{run} is not a study folder: give the --out folder of `edgeshrink study`.")
    path = write_report(run)
    console = Console()
    if not quiet:
        print_summary(load_run(run), console)
    console.print(f"report: {path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
