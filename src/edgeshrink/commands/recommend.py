"""``edgeshrink recommend RUN --device NAME``: one candidate for one device, explained."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register", "print_recommendation"]


def recommend(
    run_dir: Path = typer.Argument(..., help="A study's folder (holding results.json)."),
    device: str = typer.Option(..., "--device", "-d", help="Profile name, alias or YAML path."),
    max_size: str = typer.Option(
        None, help="Largest file shipped on the device, e.g. 200kB, 1.5MB (SI units, as "
        "every size is shown; 512KiB = 524,288 bytes is accepted too)."),
    max_latency: str = typer.Option(None, help="Slowest batch-1 latency, e.g. 5ms, 250us."),
    max_drop: float = typer.Option(1.0, help="Metric points the model may lose."),
    drop_estimate: str = typer.Option(
        "upper", help="Check --max-drop against the upper end of the drop's 95% interval "
        "(upper) or the measured drop itself (point)."),
    max_energy: str = typer.Option(None, help="Energy per inference, e.g. 2mJ, 500uJ."),
    priority: str = typer.Option(
        None, help="accuracy, size, speed or energy (default: the device profile's)."),
    bench_json: list[Path] = typer.Option(
        None, help="`edgeshrink bench --json` files measured on the device; matched to the "
        "run's artifacts by sha256, their latencies replace the estimates (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the recommendation as JSON "
                                 "(with schema_version) instead of sentences."),
) -> None:
    """Pick the candidate that meets the constraints on DEVICE and is best on the priority.

    Writes the recommendation into RUN/results.json, copies the artifact and a README to
    RUN/recommended/, rewrites RUN/report.html, and prints why. Nothing qualifies: says
    which constraint cannot be met and the nearest candidate, removes the previous pick
    from RUN/recommended/, and the report says why; exit code 3.
    """
    from rich.console import Console

    from edgeshrink.advisor import Constraints, NoFit, advise_run
    from edgeshrink.config import check_choice
    from edgeshrink.devices import PRIORITIES, load_profile
    from edgeshrink.report import write_report

    cons = Constraints.from_text(max_size=max_size, max_latency=max_latency, max_drop=max_drop,
                                 max_energy=max_energy, drop_estimate=drop_estimate)
    if priority is not None:
        check_choice("--priority", priority, PRIORITIES)
    load_profile(device)
    measured = None
    if bench_json:
        from edgeshrink.bench.merge import merge_device_benches
        from edgeshrink.results import load_run

        _, measured = merge_device_benches(load_run(run_dir), list(bench_json), run_dir,
                                           device=device)
    try:
        rec = advise_run(run_dir, device, cons, priority, measured=measured)
    except NoFit:
        write_report(run_dir)  # the page says why nothing fits; the old pick is gone
        raise
    report = write_report(run_dir)
    if as_json:
        import json

        from edgeshrink.results import SCHEMA_VERSION

        print(json.dumps({"schema_version": SCHEMA_VERSION, **rec}, indent=2, allow_nan=False))
        return
    print_recommendation(rec, Console(), run_dir)
    Console().print(f"report: {report}", highlight=False)


def print_recommendation(rec: dict, console, run_dir: Path | None = None) -> None:
    """The explanation in plain sentences, then the alternatives."""
    console.print(f"[bold green]recommended for {rec['device']}: {rec['candidate']}[/]",
                  highlight=False)
    if rec.get("verdict"):
        console.print(rec["verdict"], markup=False, highlight=False)
    for reason in rec["reasons"]:
        console.print(f"  - {reason}", markup=False, highlight=False)
    console.print("[bold]alternatives[/bold]")
    for alt in rec["alternatives"]:
        console.print(f"  - {alt['name']}: {alt['why_not']}", markup=False, highlight=False)
    if run_dir is not None:
        console.print(f"artifact and README: {Path(run_dir) / 'recommended'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
