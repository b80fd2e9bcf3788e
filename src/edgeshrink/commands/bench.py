"""``edgeshrink bench``: measure a model in its runtime on this machine (``.onnx`` in ONNX
Runtime, ``.tflite`` in LiteRT, ``.pte`` in ExecuTorch).

The same code runs as ``python -m edgeshrink.bench`` on a device that has only numpy and
that runtime; this command is its Typer face on the host.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def bench(
    models: list[Path] = typer.Argument(None, help="The .onnx, .tflite or .pte file(s); several need --compare."),
    compare: bool = typer.Option(
        False, "--compare", help="Time the models interleaved in one run and print ratios."
    ),
    threads: int = typer.Option(1, help="Runtime threads (0 = the runtime's default)."),
    warmup: int = typer.Option(10, help="Untimed runs before timing."),
    runs: int = typer.Option(None, help="Timed runs (default 100; the cap when --budget is set)."),
    budget: float = typer.Option(None, metavar="SECONDS", help="Time budget for the timed runs."),
    batch: int = typer.Option(None, help="Axis 0 of inputs whose batch dimension is dynamic."),
    inputs: Path = typer.Option(None, metavar="NPZ", help=".npz with the input arrays."),
    dim: list[str] = typer.Option(None, metavar="NAME=N", help="Value of a dynamic dimension."),
    provider: str = typer.Option("CPUExecutionProvider",
                                 help="ONNX Runtime execution provider (.onnx files only)."),
    seed: int = typer.Option(0, help="Seed of generated inputs."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: Path = typer.Option(None, metavar="FILE", help="Also write the JSON report here."),
    write_pyz: Path = typer.Option(
        None, metavar="FILE", help="Write a single-file copy of the bench tool for a device."
    ),
) -> None:
    """Measure load time, first inference, latency percentiles, throughput, peak memory.

    Run it on the device itself (copy the file --write-pyz writes): server figures
    say nothing about a Raspberry Pi.
    """
    from edgeshrink.bench import BenchError, BenchOptions, parse_dims
    from edgeshrink.bench.cli import run

    if write_pyz is not None:
        from edgeshrink.bench.portable import write_pyz as _write

        typer.echo(_write(write_pyz))
        return
    paths = [str(m) for m in models or []]
    if len(paths) > 1 and not compare:
        raise BenchError(
            "several models need --compare, e.g. `edgeshrink bench --compare A.onnx B.onnx`."
        )
    if compare and len(paths) < 2:
        raise BenchError("--compare needs at least two models, e.g. `--compare A.onnx B.onnx`.")
    options = BenchOptions(
        threads=threads,
        warmup=warmup,
        runs=runs if runs is not None or budget is not None else 100,
        budget_s=budget,
        batch=batch,
        inputs=str(inputs) if inputs else None,
        dims=parse_dims(dim),
        provider=provider,
        seed=seed,
    )
    run(paths, options, as_json=json_out, out=str(out) if out else None)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
