"""The search loop on Optuna: one study, any number of workers, every trial a study candidate.

The worker that creates the study measures the baseline, runs the sensitivity scans, builds
the space and stores all of it (with the settings) in the study's user attributes, then
enqueues the first trials (the scans' seeds, then a seeded random design). A worker that
joins reads everything from the storage, so ``edgeshrink search --join --storage URL
--study-name NAME`` is all another machine needs.

Each trial is built, exported and measured with :func:`edgeshrink.study.runner.
evaluate_candidate` (the study's own path) and stores its ``CandidateRecord`` on the trial;
``results.json`` is rendered from the storage. Objectives (all minimised): metric drop,
latency on the device (measured where the device is this host, taken from a bench JSON
measured on the device for an artifact it covers (``--bench-json``, matched by sha256), else
the roofline estimate; labelled), stored bytes on the device, energy estimate; the budget enters as Optuna
constraints (TPE / NSGA-II ``constraints_func``).

Exactly ``trials`` trials complete: trials are ranked by their *key* (a re-queued trial keeps
the number of the one that died), and a trial starts only while fewer than ``trials`` live
trials rank before it; otherwise it waits (failing stale trials) until the search is done.

Example:
    >>> settings = SearchSettings(task="zoo:lenet5-mnist", device="cortex-m7", trials=20,
    ...                           out="runs/search")
    >>> study = create_search(settings, storage, "edgeshrink")
    >>> work(study, "runs/search")
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeshrink.errors import UserError

__all__ = ["SearchSettings", "OBJECTIVES", "create_search", "load_search", "work",
           "render_results", "trial_key", "SAMPLERS"]

OBJECTIVES = ("metric_drop", "latency_ms", "size_bytes", "energy_mj")
SAMPLERS = ("tpe", "nsga2", "random")
_ATTR = "edgeshrink"
_POLL_S = 1.0


@dataclass(frozen=True)
class SearchSettings:
    """What a search is for; stored in the study so that joining workers use the same."""

    task: str
    device: str
    trials: int
    out: str
    constraints: dict[str, Any] = field(default_factory=dict)
    priority: str | None = None
    artifacts_dir: str | None = None
    threads: tuple[int, ...] = (1,)
    budget_s: float = 0.3
    sampler: str = "tpe"
    seed: int = 0
    max_epochs: int = 3
    initial: int | None = None  # enqueued random design size (None: about a quarter)
    only: str | None = None  # "int8": INT8 choices only (no pruning), as NNCF's search
    bench_json: tuple[str, ...] = ()  # `edgeshrink bench --json` files measured on the device

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "threads": list(self.threads),
                "bench_json": list(self.bench_json)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["threads"] = tuple(kw.get("threads", (1,)))
        kw["bench_json"] = tuple(kw.get("bench_json", ()))
        return cls(**kw)


# ----------------------------------------------------------------- study set-up


def _sampler(settings: SearchSettings, n_start: int):
    import optuna

    def constraints(trial) -> list[float]:
        return list(trial.user_attrs.get("constraints", [0.0]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate/group/constraints are "experimental"
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=settings.seed)
        if settings.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=settings.seed, constraints_func=constraints,
                population_size=max(4, min(50, settings.trials // 3)))
        return optuna.samplers.TPESampler(
            seed=settings.seed, constraints_func=constraints, multivariate=True, group=True,
            n_startup_trials=max(n_start, 1))


def _initial_design(settings, space, scans, max_drop: float, plans=(),
                    priority: str | None = None) -> list[dict]:
    """Seeds (the scans' and the fixed plans' ``plans`` recipes the space represents, chosen
    by the ``priority``), then a seeded random design; empty for a random search."""
    from edgeshrink.search.seeding import _distinct, seeds
    from edgeshrink.search.space import random_params

    if settings.sampler == "random":
        return []
    first = seeds(space, scans, max_drop=max_drop, plans=plans, priority=priority)
    extra = settings.initial if settings.initial is not None else max(2, settings.trials // 8)
    rng = np.random.default_rng(settings.seed)
    design = _distinct(space, first + [random_params(space, rng) for _ in range(extra)])
    return design[: settings.trials]


def create_search(settings: SearchSettings, storage, study_name: str, *, task=None,
                  on_progress=None):
    """Measure the baseline, scan, build the space, create the study, enqueue the first
    trials; returns the Optuna study. Fails if ``study_name`` already exists there."""
    import optuna

    from edgeshrink.devices import load_profile
    from edgeshrink.search.seeding import build_space, plan_recipes
    from edgeshrink.study.plan import CandidateSpec
    from edgeshrink.study.runner import BASELINE, evaluate_candidate
    from edgeshrink.task import load_task

    if study_name in optuna.get_all_study_names(storage):
        raise UserError(f"a search named {study_name!r} already exists in that storage; add "
                        "workers to it with --join, or pick another --study-name.")
    profile = load_profile(settings.device)
    task = task or load_task(settings.task)
    out = Path(settings.out)
    _note(on_progress, "baseline")
    base = evaluate_candidate(CandidateSpec(BASELINE, ()), task, out, baseline_value=None,
                              art_dir=_art_dir(settings), threads=settings.threads,
                              budget_s=settings.budget_s)
    _relocate(base, settings)
    _note(on_progress, "sensitivity scans")
    max_drop = settings.constraints.get("max_drop") or 1.0
    space, scans = build_space(task, profile, max_drop=max_drop, max_epochs=settings.max_epochs)
    if settings.only == "int8":
        space.groups, space.layers, space.precisions, space.epochs = {}, {}, ["int8"], [0]
        space.macs, space.qat_epochs = [], []  # calibrated INT8, as NNCF's search
        space.notes.append("INT8 choices only (--only int8)")
    plans = plan_recipes(task, settings.max_epochs) if settings.sampler != "random" else []
    design = _initial_design(settings, space, scans, max_drop, plans,
                             settings.priority or profile.default_priority)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=study_name, directions=["minimize"] * len(OBJECTIVES),
        sampler=_sampler(settings, len(design)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental"; names the axes in optuna-dashboard
        study.set_metric_names(list(OBJECTIVES))
    study.set_user_attr(_ATTR, {
        "settings": settings.to_dict(), "space": space.to_dict(), "scans": scans,
        "baseline": base.to_dict(), "device_bench": _device_bench(settings.bench_json, settings.device),
        "created": dt.datetime.now(dt.UTC).isoformat(
            timespec="seconds"),
        "metric": {"name": task.metric.name, "unit": task.metric.unit,
                   "higher_is_better": task.metric.higher_is_better}})
    for params in design:
        study.enqueue_trial(params, skip_if_exists=True)
    return study


def _device_bench(paths, device: str | None = None) -> list[dict[str, Any]]:
    """Latencies measured on the device (``edgeshrink bench --json`` files): sha256 of the
    file measured, threads, p50, file name; stored in the study so joining workers need
    not reach the files. A file measured on another machine than ``device`` is left out
    (``study`` and ``recommend`` flag the same files)."""
    from edgeshrink.bench.merge import device_measurements, load_bench_json, machine_mismatch
    from edgeshrink.devices import load_profile

    profile = load_profile(device) if device else None
    return [{"sha256": m["sha256"], "threads": m["threads"], "p50": m["stats"]["p50"],
             "source": m["source"]}
            for p in paths for m in device_measurements(load_bench_json(p), Path(p).name)
            if profile is None or machine_mismatch(m["machine"], profile) is None]


def device_latency(rec, bench: list[dict[str, Any]], threads: int):
    """``{rec.name: (p50 ms, bench file)}`` where a device bench measured this very file
    (sha256), at ``threads`` if it covers them; else ``{}``."""
    sha = rec.notes.get("sha256")
    found = [m for m in bench if sha and m["sha256"] == sha]
    if not found:
        return {}
    best = next((m for m in found if int(m["threads"]) == threads), found[-1])
    return {rec.name: (float(best["p50"]), str(best["source"]))}


def load_search(storage, study_name: str):
    """The study and its settings, for a joining worker."""
    import optuna

    if study_name not in optuna.get_all_study_names(storage):
        raise UserError(f"no search named {study_name!r} in that storage; start it without "
                        "--join first (or check --study-name).")
    study = optuna.load_study(study_name=study_name, storage=storage)
    attrs = study.user_attrs.get(_ATTR)
    if not attrs:
        raise UserError(f"study {study_name!r} was not made by `edgeshrink search`.")
    settings = SearchSettings.from_dict(attrs["settings"])
    study.sampler = _sampler(settings, _n_enqueued(study))
    return study, settings


def _n_enqueued(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if "fixed_params" in t.system_attrs)


def _art_dir(settings: SearchSettings) -> Path:
    return Path(settings.artifacts_dir or Path(settings.out) / "artifacts")


def _relocate(rec, settings: SearchSettings) -> None:
    """Artifact paths in records are relative to the run folder (``../`` if elsewhere)."""
    root = _art_dir(settings).parent
    rec.artifact = os.path.relpath(root / rec.artifact, settings.out)


def _note(on_progress, text: str) -> None:
    if on_progress:
        on_progress(text)


# ----------------------------------------------------------------- the trials


def trial_key(trial) -> int:
    """The number of the trial a re-queued trial replaces, else its own number."""
    return int(trial.system_attrs.get("failed_trial", trial.number))


class RecipeFailed(Exception):
    """A recipe this model cannot take: the trial fails, the search goes on."""


def fail_stale(study, heartbeat: bool) -> None:
    """Fail (and re-queue) the trials of dead workers: by heartbeat on a database, by the
    worker's process on this machine for a journal file (which has no heartbeat)."""
    import optuna

    from edgeshrink.search.storage import fail_dead_local_trials

    if heartbeat:
        optuna.storages.fail_stale_trials(study)
    else:
        fail_dead_local_trials(study)


def _wait_for_turn(study, trial, trials: int, heartbeat: bool) -> None:
    """Return when fewer than ``trials`` live trials rank before this one. Prune it when a
    queued trial ranks before it (this worker then runs that one), and prune it and stop
    this worker once ``trials`` trials are complete."""
    import optuna
    from optuna.trial import TrialState

    me = trial_key(study._storage.get_trial(trial._trial_id))
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    while True:
        all_ = study.get_trials(deepcopy=False)
        if sum(t.state == TrialState.COMPLETE for t in all_) >= trials:
            study.stop()
            raise optuna.TrialPruned("the search has all its trials")
        before = [t for t in all_ if t.state in live and t.number != trial.number
                  and trial_key(t) < me]
        if len(before) < trials:
            return
        if any(t.state == TrialState.WAITING for t in before):  # a re-queued trial ranks
            raise optuna.TrialPruned("a re-queued trial goes first")  # first: let it run
        fail_stale(study, heartbeat)
        time.sleep(_POLL_S)


def _violations(figs, cons: dict[str, Any]) -> list[float]:
    """Optuna constraints (> 0 violates), relative so that nearer trials rank first."""
    out = [0.0 if figs.fits else 1.0]
    pairs = (("max_drop", figs.rec.metric_drop), ("max_size_bytes", figs.size_bytes),
             ("max_latency_ms", figs.latency_ms), ("max_energy_mj", figs.energy_mj))
    for key, value in pairs:
        limit = cons.get(key)
        if limit is not None:
            scale = max(limit, 1.0) if key == "max_drop" else limit
            out.append((value - limit) / scale)
    return out


class _Worker:
    """The objective of one worker process: state it loads once."""

    def __init__(self, study, settings: SearchSettings, on_trial=None, task=None):
        from edgeshrink.devices import load_profile
        from edgeshrink.search.space import SearchSpace
        from edgeshrink.search.storage import has_heartbeat
        from edgeshrink.task import load_task

        attrs = study.user_attrs[_ATTR]
        self.study, self.settings, self.on_trial = study, settings, on_trial
        self.space = SearchSpace.from_dict(attrs["space"])
        self.baseline = float(attrs["baseline"]["metric"]["value"])
        self.profile = load_profile(settings.device)
        self.task = task or load_task(settings.task)
        self.heartbeat = has_heartbeat(study._storage)
        self.bench = attrs.get("device_bench", [])

    def __call__(self, trial) -> tuple[float, ...]:
        from edgeshrink.advisor import candidate_figures
        from edgeshrink.config import config_to_dict
        from edgeshrink.search.space import recipe_of, suggest
        from edgeshrink.search.storage import mark_worker
        from edgeshrink.study.plan import CandidateSpec
        from edgeshrink.study.runner import evaluate_candidate

        s = self.settings
        mark_worker(trial)  # first: a journal search fails this trial if this process dies
        _wait_for_turn(self.study, trial, s.trials, self.heartbeat)
        key = trial_key(self.study._storage.get_trial(trial._trial_id))
        recipe = recipe_of(self.space, suggest(trial, self.space))
        trial.set_user_attr("recipe", [config_to_dict(c) for c in recipe])
        if not recipe:  # a point that changes nothing (no channel removed, FP32): the
            trial.set_user_attr("error", "this point changes nothing: it is the baseline")
            raise RecipeFailed("the baseline")  # baseline, measured already; fails at once
        spec = CandidateSpec(f"trial-{key:03d}", recipe)
        try:
            rec = evaluate_candidate(spec, self.task, _art_dir(s).parent, art_dir=_art_dir(s),
                                     baseline_value=self.baseline, threads=s.threads,
                                     budget_s=s.budget_s, device=self.profile)
        except Exception as exc:
            if os.environ.get("EDGESHRINK_DEBUG"):
                raise
            error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", error)
            raise RecipeFailed(error) from None
        _relocate(rec, s)
        figs = candidate_figures(rec, self.profile,
                                 device_latency(rec, self.bench, s.threads[0]))
        values = (rec.metric_drop, figs.latency_ms, float(figs.size_bytes), figs.energy_mj)
        rec.notes["search"] = {"trial": key, "study": self.study.study_name,
                               "latency_source": figs.latency_source,
                               **dict(zip(OBJECTIVES, values, strict=True))}
        trial.set_user_attr("record", rec.to_dict())
        trial.set_user_attr("constraints", _violations(figs, s.constraints))
        if self.on_trial:
            self.on_trial(rec, figs)
        return values


def work(study, settings: SearchSettings, *, timeout: float | None = None, on_trial=None,
         task=None) -> None:
    """Run trials in this process until the search has ``settings.trials`` complete ones."""
    import optuna

    if settings.trials <= _complete(study):
        return
    objective = _Worker(study, settings, on_trial, task)
    fail_stale(study, objective.heartbeat)  # a resumed journal search: its dead workers' trials

    def stop_when_done(study_, _trial) -> None:
        if _complete(study_) >= settings.trials:
            study_.stop()
        elif _failed(study_) > max(10, 2 * settings.trials):  # the sampler insists on
            study_.stop()  # recipes this model cannot take: stop with what completed

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed recipes: in results.json
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=None, timeout=timeout, callbacks=[stop_when_done],
                       catch=(RecipeFailed,), gc_after_trial=False)


def _failed(study) -> int:
    from optuna.trial import TrialState

    return sum("error" in t.user_attrs
               for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))


def _complete(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# ----------------------------------------------------------------- results


def render_results(study, out: Path | str):
    """Write ``OUT/results.json`` from the storage: the baseline and every completed trial
    (each recipe once), failures, the Pareto front; returns the ``RunRecord``."""
    from optuna.trial import TrialState

    from edgeshrink.results import CandidateRecord, RunRecord, pareto_front, save_run
    from edgeshrink.study.machine import machine_info

    attrs = study.user_attrs[_ATTR]
    metric = attrs["metric"]
    run = RunRecord(task=attrs["settings"]["task"], metric=metric, machine=machine_info(),
                    created=attrs["created"],
                    baseline=CandidateRecord.from_dict(attrs["baseline"]))
    seen = set()
    trials = sorted(study.get_trials(deepcopy=False), key=trial_key)
    for t in trials:
        if t.state == TrialState.COMPLETE and "record" in t.user_attrs:
            rec = CandidateRecord.from_dict(t.user_attrs["record"])
            key = repr(rec.recipe)
            if key not in seen:
                seen.add(key)
                run.candidates.append(rec)
        elif t.state == TrialState.FAIL and "error" in t.user_attrs:
            run.failed.append({"name": f"trial-{trial_key(t):03d}",
                               "recipe": t.user_attrs.get("recipe", []),
                               "error": t.user_attrs["error"]})
    run.pareto = pareto_front(run.all_candidates(), higher_is_better=metric["higher_is_better"])
    save_run(run, out)
    return run
