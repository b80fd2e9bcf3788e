"""``edgeshrink report RUN``: rebuild RUN/report.html (and its PNGs) from RUN/results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeshrink.errors import UserError

__all__ = ["register"]


def report(
    run: Path = typer.Argument(None, help="The study's folder, e.g. runs/demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the summary table."),
    monitor: Path = typer.Option(None, metavar="STATE", help="A monitor's state file "
                                 "(monitor.sqlite): also write its time series page."),
    monitor_profile: Path = typer.Option(None, metavar="JSON", help="Its monitor-profile.json "
                                         "(default: beside the state, or RUN/recommended/)."),
) -> None:
    """Write RUN/report.html: plots of the trade-off, every candidate, the recommendation."""
    from rich.console import Console

    from edgeshrink.report import print_summary, write_report
    from edgeshrink.results import load_run

    if monitor is not None:
        from edgeshrink.monitor.page import write_report_page

        page = write_report_page(monitor, run, monitor_profile)
        Console().print(f"monitor page: {page}", markup=False, highlight=False)
        if run is None:
            return
    if run is None:
        raise UserError("give the study's folder, e.g. `edgeshrink report runs/demo`, or "
                        "--monitor STATE for a monitor's page.")
    if not run.is_dir():
        raise UserError(f"{run} is not a study folder: give the --out folder of `edgeshrink study`.")
    path = write_report(run)
    console = Console()
    if not quiet:
        print_summary(load_run(run), console)
    console.print(f"report: {path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
