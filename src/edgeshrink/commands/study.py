"""``edgeshrink study``: every sensible compression of a task's model, measured and compared."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeshrink.commands._model import DEFAULT_TASK, load_source_task, model_options

__all__ = ["register"]


def _threads(text: str) -> tuple[int, ...]:
    from edgeshrink.errors import UserError

    try:
        values = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UserError(f"--threads must be a comma-separated list of positive integers, got {text!r}.")
    return values


@model_options
def study(
    task: str = typer.Option(DEFAULT_TASK, help="zoo:NAME or path/to/file.py:function"),
    out: Path = typer.Option(Path("runs/demo"), help="Run folder for results.json and artifacts."),
    plan: str = typer.Option(
        None, help="default, pruning, quantization, pretrained, full, or a YAML file "
        "{name: [configs]} (default: with --device, the device's runtimes and formats; "
        "else `default`)."),
    resume: bool = typer.Option(False, help="Keep finished candidates of a previous run in OUT."),
    force: bool = typer.Option(False, help="Replace the run in OUT (only the files it wrote), or "
                               "write into a non-empty folder that holds no run."),
    threads: str = typer.Option("1,2", help="Thread counts to time at batch 1 (largest is primary)."),
    finetune_epochs: int = typer.Option(3, min=0, help="Epochs of retraining after pruning."),
    sensitivity: bool = typer.Option(
        False, help="Also scan per-layer sensitivity to sparsity and bit width (heat maps)."),
    device: str = typer.Option(None, help="Device profile to recommend for (`edgeshrink devices`)."),
    max_size: str = typer.Option(
        None, help="Largest file shipped on the device, in bytes with a unit: 200kB, 1.5MB "
        "(SI, kB = 1000 B, as every size is shown; KiB = 1024 B is accepted too)."),
    max_latency: str = typer.Option(None, help="Slowest batch-1 latency on the device, in ms, "
                                    "us or s: 5ms, 250us, 0.1s (a bare number is ms)."),
    max_drop: float = typer.Option(1.0, help="Metric points the model may lose, in the metric's "
                                   "unit (accuracy: percentage points, e.g. 1.0)."),
    drop_estimate: str = typer.Option(
        "upper", help="--max-drop against the drop's 95% upper bound (upper) or point."),
    max_energy: str = typer.Option(None, help="Energy per inference on the device, in mJ, uJ or "
                                   "J: 2mJ, 500uJ (a bare number is mJ)."),
    priority: str = typer.Option(None, help="accuracy, size, speed or energy (default: the "
                                 "device profile's)."),
    bench_json: list[Path] = typer.Option(
        None, help="`edgeshrink bench --json` files measured on the device: their latencies "
        "replace the local ones for the artifacts they cover (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json (with its "
                                 "schema_version) on stdout instead of the tables."),
    source=None,
) -> None:
    """Run the baseline and every candidate, each measured on the file its runtime runs;
    with --device and no --plan, the candidates are built in the device's runtimes."""
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from edgeshrink.errors import UserError
    from edgeshrink.report.html import write_report
    from edgeshrink.report.terminal import print_summary
    from edgeshrink.results import load_run
    from edgeshrink.study import resolve_plan, run_study
    from edgeshrink.study.plan import PLANS
    from edgeshrink.study.rundir import RunFolder, check_out_dir

    thread_counts = _threads(threads)
    constraints = _constraints(device, priority, max_size=max_size, max_latency=max_latency,
                               max_drop=max_drop, max_energy=max_energy,
                               drop_estimate=drop_estimate)
    if bench_json:
        from edgeshrink.bench.merge import load_bench_json

        for path in bench_json:
            load_bench_json(path)  # a missing or foreign file fails now, not after the study
    if plan is not None and (plan not in PLANS):
        resolve_plan(plan, None)  # a bad plan file or name fails before the model is loaded
    check_out_dir(out, resume=resume, force=force)
    console = Console(stderr=True)
    log = not console.is_terminal  # a log file: plain lines, flushed, instead of a live bar
    with console.status(f"loading {source.model or task} (training it on first use)"):
        the_task = load_source_task(task, source)
    if source.model is not None:
        from edgeshrink.byo import announce

        # say the split; refuse --sensitivity on ONNX/TorchScript; an ONNX model's plan
        plan = announce(the_task, plan, console, sensitivity=sensitivity)
    if plan is None and device:
        _announce_device_plan(device, console)
    limits = [k for k, v in (("size", max_size), ("latency", max_latency),
                             ("energy", max_energy)) if v]
    specs = resolve_plan(plan, the_task, finetune_epochs=finetune_epochs, device=device,
                         priority=priority, limits=limits,
                         on_note=lambda text: console.print(text, markup=False,
                                                            highlight=False, soft_wrap=True))
    if log:  # not before: a bad --task stays a one-line error
        _log(f"{source.model or task} loaded; {len(specs)} candidates to build into {out}")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    started, done = time.monotonic(), [0]
    with Progress(*columns, console=console, disable=log) as bar:
        job = bar.add_task("baseline", total=len(specs) + 1)

        def on_progress(name: str, step: str) -> None:
            if step == "done":
                done[0] += 1
            if log:
                eta = _eta(started, done[0], len(specs) + 1) if step == "done" else ""
                _log(f"{name}: {step}" + (f" ({done[0]}/{len(specs) + 1}, {eta})" if eta else ""))
            elif step.startswith("rebuilding"):
                bar.console.print(f"{name}: {step}", markup=False, highlight=False)
            if step == "done":
                bar.advance(job)
            elif not step.startswith("rebuilding"):
                bar.update(job, description=f"{name}: {step}")

        run = run_study(the_task, specs, out, resume=resume, force=force, threads=thread_counts,
                        sensitivity=sensitivity, on_progress=on_progress,
                        device=_profile(device))
    measured = None
    if bench_json:
        from edgeshrink.bench.merge import merge_device_benches

        run, measured = merge_device_benches(run, list(bench_json), out, device=device)
    advice_error = None
    if device:
        from edgeshrink.advisor import advise_run

        try:
            advise_run(out, device, constraints, priority, measured=measured)
        except UserError as exc:  # nothing fits: still show what was measured, then exit 3
            advice_error = exc
        run = load_run(out)
    report = write_report(out)
    RunFolder.existing(out).adopt_all()  # report, hand-over: files --force may replace later
    if as_json:  # the run as results.json holds it, on stdout; messages stay on stderr
        print((out / "results.json").read_text(encoding="utf-8"), end="")
    else:
        print_summary(run, Console())
        Console().print(
            f"\nresults: {out / 'results.json'}   artifacts: {out / 'artifacts'}/   "
            f"report: {report}", highlight=False)
    if advice_error is not None:
        raise advice_error


def _constraints(device, priority, **limits):
    """Every limit and the priority checked now, with or without --device (a typo must not
    cost a whole study); the Constraints the advisor gets when a device is named."""
    from edgeshrink.advisor import Constraints
    from edgeshrink.config import check_choice
    from edgeshrink.devices import PRIORITIES, load_profile

    constraints = Constraints.from_text(**limits)
    if priority is not None:
        check_choice("--priority", priority, PRIORITIES)
    if device is not None:
        load_profile(device)  # an unknown device fails now, not after the study
    return constraints if device is not None else None


def _profile(device: str | None):
    """The device profile ``--device`` names (its CPU decides INT8 formats), or None."""
    from edgeshrink.devices import load_profile

    return load_profile(device) if device else None


def _announce_device_plan(device: str, console) -> None:
    """One line: the runtimes the device-driven plan builds for."""
    from edgeshrink.devices import load_profile

    profile = load_profile(device)
    runtimes = "; ".join(r.label() for r in profile.shipped_runtimes())
    console.print(f"plan: for {profile.name}, in the runtimes that ship on it ({runtimes}); "
                  "--plan NAME for another", markup=False, highlight=False, soft_wrap=True)


def _print_json(data) -> None:
    """One strict-JSON document on stdout (the machine-readable twin of a table)."""
    import json

    print(json.dumps(data, indent=2, allow_nan=False))


def _eta(started: float, done: int, total: int) -> str:
    """``ETA 1m20s`` from the mean time of the candidates done so far ('' before the first)."""
    import time

    if done < 1 or done >= total:
        return ""
    left = (time.monotonic() - started) / done * (total - done)
    return f"ETA {int(left // 60)}m{int(left % 60):02d}s"


def _log(text: str) -> None:
    """One progress line for a non-interactive log, flushed so that a killed run's log shows
    how far it got."""
    import sys
    import time

    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def tasks(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (schema_version, tasks)."),
) -> None:
    """List the zoo tasks."""
    from rich.console import Console
    from rich.table import Table

    from edgeshrink import zoo

    if as_json:
        from edgeshrink.results import SCHEMA_VERSION

        _print_json({"schema_version": SCHEMA_VERSION, "tasks": [
            {"name": f"zoo:{name}", "description": entry.description,
             "requires": list(entry.requires)} for name, entry in zoo.available().items()]})
        return
    table = Table("task", "description")
    for name, entry in zoo.available().items():
        table.add_row(f"zoo:{name}", entry.description)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(study)
    app.command()(tasks)
