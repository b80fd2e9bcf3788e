"""``edgeshrink recommend RUN --device NAME``: one candidate for one device, explained."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register", "read_bench"]


def read_bench(specs: list[str] | None) -> dict[str, tuple[float, str]]:
    """``["int8=bench.json", ...]`` -> ``{"int8": (p50 ms, "bench.json")}``."""
    from edgeshrink.errors import UserError

    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise UserError(f"--bench {spec!r}: write CANDIDATE=FILE.json with an existing "
                            "file from `edgeshrink bench MODEL --json`.")
        try:
            data = json.loads(Path(path).read_text())
            lat = data.get("latency_ms", data)
            p50 = float(lat["p50"] if isinstance(lat, dict) else lat)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path} has no latency_ms.p50: is it `edgeshrink bench --json` "
                            "output?") from None
        out[name] = (p50, Path(path).name)
    return out


def recommend(
    run_dir: Path = typer.Argument(..., help="A study's folder (holding results.json)."),
    device: str = typer.Option(..., "--device", "-d", help="Profile name, alias or YAML path."),
    max_size: str = typer.Option(None, help="Largest artifact, e.g. 200KB, 1.5MB."),
    max_latency: str = typer.Option(None, help="Slowest batch-1 latency, e.g. 5ms, 250us."),
    max_drop: float = typer.Option(1.0, help="Metric points the model may lose."),
    max_energy: str = typer.Option(None, help="Energy per inference, e.g. 2mJ, 500uJ."),
    priority: str = typer.Option(
        None, help="accuracy, size, speed or energy (default: the device profile's)."),
    bench: list[str] = typer.Option(
        None, metavar="CANDIDATE=FILE", help="Latency measured on the device with "
        "`edgeshrink bench --json`: replaces that candidate's estimate."),
) -> None:
    """Pick the candidate that meets the constraints on DEVICE and is best on the priority.

    Writes the recommendation into RUN/results.json, copies the artifact and a README to
    RUN/recommended/, and prints why. Nothing qualifies: says which constraint cannot be
    met and the nearest candidate, exit code 2.
    """
    from rich.console import Console

    from edgeshrink.advisor import Constraints, advise_run

    cons = Constraints.from_text(max_size=max_size, max_latency=max_latency, max_drop=max_drop,
                                 max_energy=max_energy)
    rec = advise_run(run_dir, device, cons, priority, measured=read_bench(bench))
    print_recommendation(rec, Console(), run_dir)


def print_recommendation(rec: dict, console, run_dir: Path | None = None) -> None:
    """The explanation in plain sentences, then the alternatives."""
    console.print(f"[bold green]recommended for {rec['device']}: {rec['candidate']}[/]",
                  highlight=False)
    for reason in rec["reasons"]:
        console.print(f"  - {reason}", markup=False, highlight=False)
    console.print("[bold]alternatives[/bold]")
    for alt in rec["alternatives"]:
        console.print(f"  - {alt['name']}: {alt['why_not']}", markup=False, highlight=False)
    if run_dir is not None:
        console.print(f"artifact and README: {Path(run_dir) / 'recommended'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
