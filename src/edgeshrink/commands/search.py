"""``edgeshrink search``: per-layer compression choices found by Optuna for a device budget."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]

INFEASIBLE_EXIT = 3


def _check(trials, workers, timeout, sampler, heartbeat, storage, join, device, priority,
           max_epochs, bench_json=()) -> None:
    """Every option, before any work (one sentence and exit 2 on the first bad one)."""
    from edgeshrink.config import check_choice
    from edgeshrink.devices import PRIORITIES, load_profile
    from edgeshrink.errors import UserError
    from edgeshrink.search.engine import SAMPLERS
    from edgeshrink.search.storage import check_storage_url

    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}.")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}.")
    if timeout is not None and timeout <= 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {timeout}.")
    if heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, got {heartbeat}.")
    if max_epochs < 0:
        raise UserError(f"--finetune-epochs must be 0 or more, got {max_epochs}.")
    check_choice("--sampler", sampler, SAMPLERS)
    check_storage_url(storage)
    if bench_json:
        if join:
            raise UserError("--bench-json is given to the worker that starts the search; "
                            "joining workers read the device latencies from the storage.")
        from edgeshrink.bench.merge import load_bench_json

        for path in bench_json:
            load_bench_json(path)  # a missing or foreign file fails now, not after the search
    if join:
        if storage is None:
            raise UserError("--join needs the --storage of the search to join "
                            "(a database URL, or the run folder's search.journal).")
        return
    if device is None:
        raise UserError("--device is required to start a search (`edgeshrink devices` lists "
                        "them); workers that --join read it from the storage.")
    load_profile(device)
    if priority is not None:
        check_choice("--priority", priority, PRIORITIES)


def search(
    task: str = typer.Option("zoo:lenet5-mnist", help="zoo:NAME or path/to/file.py:function"),
    device: str = typer.Option(None, help="Device profile the budget is for (`edgeshrink devices`)."),
    max_drop: float = typer.Option(1.0, help="Metric points the model may lose."),
    max_size: str = typer.Option(None, help="Largest file on the device, e.g. 200KB."),
    max_latency: str = typer.Option(None, help="Slowest batch-1 latency on the device, e.g. 5ms."),
    max_energy: str = typer.Option(None, help="Energy per inference on the device, e.g. 2mJ."),
    priority: str = typer.Option(None, help="accuracy, size, speed or energy (default: the device's)."),
    trials: int = typer.Option(30, help="Trials to complete, over all workers."),
    timeout: float = typer.Option(None, help="Stop this worker after this many seconds."),
    storage: str = typer.Option(
        None, help="postgresql+psycopg://user@host/db (many machines), sqlite:///f.db, or a "
        "*.journal file; default: OUT/search.journal."),
    study_name: str = typer.Option("edgeshrink-search", help="Name of the search in the storage."),
    workers: int = typer.Option(1, help="Worker processes on this machine."),
    join: bool = typer.Option(False, help="Join the search --study-name in --storage as a worker."),
    out: Path = typer.Option(Path("runs/search"), help="Run folder: results.json, report, journal."),
    artifacts_dir: Path = typer.Option(
        None, help="Where trial artifacts go (a path every worker reaches); default OUT/artifacts."),
    sampler: str = typer.Option("tpe", help="tpe (constrained, multi-objective), nsga2 or random."),
    seed: int = typer.Option(0, help="Seed of the sampler and of the random initial design."),
    threads: int = typer.Option(1, help="ORT threads the latency is measured at."),
    finetune_epochs: int = typer.Option(
        3, help="Most fine-tuning epochs a trial may choose, after pruning and for QAT "
        "(0: no QAT)."),
    heartbeat: int = typer.Option(10, help="Seconds between heartbeats on a database storage."),
    int8_only: bool = typer.Option(
        False, help="Search INT8 choices only (per-layer INT8/FP32, calibrator, bias "
        "correction), no pruning: NNCF's accuracy-control question."),
    bench_json: list[Path] = typer.Option(
        None, help="`edgeshrink bench --json` files measured on the device: a trial whose file "
        "one of them measured (same sha256) takes the device's latency, labelled with the file "
        "name, instead of the estimate (repeatable)."),
    resume: bool = typer.Option(
        False, help="Continue the search in --out (its search.journal): trials of workers "
        "that died are failed and re-queued, and it runs to its stored trial count."),
) -> None:
    """Search per-group widths, per-layer sparsity and precision (QAT included), calibration
    and fine-tuning for a device budget; every trial is measured on its exported file, as a study candidate."""
    from edgeshrink.advisor import Constraints

    if resume:
        storage, join = _resume_storage(storage, out, join), True
    _check(trials, workers, timeout, sampler, heartbeat, storage, join, device, priority,
           finetune_epochs, bench_json or ())
    if join:
        return _join(storage, study_name, timeout, heartbeat, advise=resume)
    cons = Constraints.from_text(max_size=max_size, max_latency=max_latency,
                                 max_drop=max_drop, max_energy=max_energy)
    if threads < 1:
        from edgeshrink.errors import UserError

        raise UserError(f"--threads must be at least 1, got {threads}.")
    from edgeshrink.search import SearchSettings

    settings = SearchSettings(
        task=task, device=device, trials=trials, out=str(out), constraints=cons.to_dict(),
        priority=priority, artifacts_dir=str(artifacts_dir) if artifacts_dir else None,
        threads=(threads,), sampler=sampler, seed=seed, max_epochs=finetune_epochs,
        only="int8" if int8_only else None,
        bench_json=tuple(str(p) for p in bench_json or ()))
    _start(settings, cons, storage, study_name, workers, timeout, heartbeat)


def _resume_storage(storage, out: Path, join: bool) -> str:
    """``--resume``: the search's storage (default OUT/search.journal, which must exist)."""
    from edgeshrink.errors import UserError
    from edgeshrink.search.storage import JOURNAL

    if join:
        raise UserError("give --resume or --join, not both (--resume joins the search in --out).")
    if storage is not None:
        return storage
    if not (out / JOURNAL).is_file():
        raise UserError(f"--resume: no search to continue in {out} (no {JOURNAL}); start one "
                        "without --resume.")
    return str(out / JOURNAL)


def _trial_line(console):
    def show(rec, figs) -> None:
        console.print(
            f"{rec.name}: drop {rec.metric_drop:+.2f}, {figs.size_bytes / 1e3:.1f} KB, "
            f"{figs.latency_ms:.3g} ms ({figs.latency_source}), {figs.energy_mj:.3g} mJ",
            highlight=False)
    return show


def _join(storage, study_name, timeout, heartbeat, *, advise: bool = False) -> None:
    """Work on a stored search; ``advise`` (``--resume``): then advise and report as the
    worker that started it would have."""
    from rich.console import Console

    from edgeshrink.advisor import Constraints
    from edgeshrink.results import load_run
    from edgeshrink.search import join_search

    settings = join_search(storage, study_name, timeout=timeout, heartbeat_s=heartbeat,
                           on_trial=_trial_line(Console(stderr=True)))
    if advise:
        return _advise(load_run(settings.out), settings, Constraints(**settings.constraints))
    if settings.bench_json:
        _merge_bench(settings)
    Console().print(f"joined {study_name}: results in {Path(settings.out) / 'results.json'}",
                    highlight=False)


def _start(settings, cons, storage, study_name, workers, timeout, heartbeat) -> None:
    from rich.console import Console

    from edgeshrink.search import clean_search_dir, run_search
    from edgeshrink.task import load_task

    console = Console(stderr=True)
    if storage is None:
        clean_search_dir(settings.out)  # the embedded journal starts afresh with the run
    with console.status(f"loading {settings.task} (training it on first use)"):
        the_task = load_task(settings.task)
    with console.status("baseline") as status:
        run = run_search(settings, storage_url=storage, study_name=study_name, workers=workers,
                         timeout=timeout, heartbeat_s=heartbeat, task=the_task,
                         on_progress=lambda text: status.update(text),
                         on_trial=_trial_line(console))
    _advise(run, settings, cons)


def _advise(run, settings, cons) -> None:
    from rich.console import Console

    from edgeshrink.advisor import advise_run, recommend
    from edgeshrink.errors import UserError
    from edgeshrink.report.html import write_report
    from edgeshrink.report.terminal import print_summary
    from edgeshrink.results import load_run

    out = Path(settings.out)
    measured = None
    if settings.bench_json:
        run, measured = _merge_bench(settings, run)
    try:
        recommend(run, settings.device, cons, settings.priority, measured=measured)
    except UserError as exc:  # no trial meets the budget: say which limit binds, exit 3
        write_report(out)
        print_summary(run, Console())
        Console(stderr=True).print(f"error: {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(INFEASIBLE_EXIT) from None  # click would turn typer.Exit into 0
    advise_run(out, settings.device, cons, settings.priority, measured=measured)
    report = write_report(out)
    print_summary(load_run(out), Console())
    Console().print(f"\nresults: {out / 'results.json'}   report: {report}", highlight=False)


def _merge_bench(settings, run=None):
    """Put the device benches' latencies into OUT/results.json (as `study --bench-json`
    does); returns the run and ``{trial: (p50 ms, file)}``. Benches that measured none of
    the trials only say so: the search is done, the estimates stand."""
    from rich.console import Console

    from edgeshrink.bench.merge import merge_device_benches
    from edgeshrink.errors import UserError
    from edgeshrink.results import load_run

    out = Path(settings.out)
    run = run or load_run(out)
    try:
        return merge_device_benches(run, list(settings.bench_json), out,
                                    device=settings.device)
    except UserError as exc:
        Console(stderr=True).print(f"note: {exc} The latencies stay estimates.",
                                   highlight=False, soft_wrap=True)
        return run, None


def register(app: typer.Typer) -> None:
    app.command()(search)
