"""Run a study: baseline and candidates, each built, exported, measured and persisted at once.

A killed study resumes (``resume=True``) and loses at most the candidate in flight: a
candidate whose record and artifact are already in the run folder is not rebuilt.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeshrink.errors import UserError
from edgeshrink.measure.intervals import per_sample_scores, record_intervals
from edgeshrink.measure.model_stats import (
    count_macs,
    count_params,
    torch_outputs,
    weight_sparsity,
)
from edgeshrink.measure.op_precision import precision_notes
from edgeshrink.packed import pack_onnx
from edgeshrink.results import (
    DISK_FULL,
    CandidateRecord,
    DiskFullError,
    RunRecord,
    pareto_front,
    save_run,
)
from edgeshrink.study.machine import machine_info
from edgeshrink.study.plan import CandidateSpec, family_of, sparsity_kind_of
from edgeshrink.study.rundir import RunFolder, model_fingerprint
from edgeshrink.targets import target_for
from edgeshrink.task import Task
from edgeshrink.transforms import Artifact, TransformContext, apply_recipe

__all__ = ["run_study", "measure_artifact", "evaluate_candidate", "BASELINE"]

BASELINE = "baseline"


def measure_artifact(
    art: Artifact,
    spec: CandidateSpec,
    task: Task,
    run_dir: Path,
    *,
    baseline_value: float | None,
    threads: tuple[int, ...] = (1, 2),
    budget_s: float = 1.0,
) -> CandidateRecord:
    """Score, size and time ``art`` on ``task`` and return its record, all through the
    target that runs it (:func:`edgeshrink.targets.target_for`): its outputs on the eval
    set (a simulated format's from its simulation), its shipped files' bytes, latency and
    memory in that runtime."""
    target = target_for(art)
    outputs = target.outputs(art, task.eval)
    values = task.metric.all(outputs, task.eval.targets)
    from edgeshrink.monitor.handover import save_reference_sample  # for recommended/'s profile

    save_reference_sample(run_dir, spec.name, outputs, task.eval.targets)
    value = values.pop(task.metric.name)
    spread = record_intervals(  # per-sample results kept: paired intervals against the baseline
        run_dir, spec.name, per_sample_scores(task.metric, outputs, task.eval.targets),
        baseline=None if baseline_value is None else BASELINE,
        higher_is_better=task.metric.higher_is_better)
    notes = dict(art.notes)
    reference = torch_outputs(art.model, task.eval)
    if reference.ndim == 2 and reference.shape[1] > 1 and task.metric.unit == "%":
        agree = float(np.mean(reference.argmax(1) == outputs.argmax(1)))
        notes["top1_agreement_with_pytorch"] = round(100.0 * agree, 3)
    notes["max_abs_diff_vs_pytorch"] = float(np.max(np.abs(reference - outputs)))
    example = tuple(t.numpy() for t in task.example_inputs())
    figures = target.figures(art, example, threads, budget_s)  # TensorRT: an estimate
    if art.runtime != "simulated":  # the precision each op really runs in, for the estimate
        notes.update(precision_notes(figures["path"]))
    notes["sha256"] = figures["sha256"]  # matches `edgeshrink bench --json` files from a device
    for key, fact in figures.get("notes", {}).items():  # the runtime's own facts (ORT:
        notes.setdefault(key, fact)  # onnx_nodes), unless the builder knew better
    by_threads, main = figures["by_threads"], str(max(threads))
    macs, act = count_macs(art.model, task.example_inputs())
    sparsity = weight_sparsity(art.model)
    encoded = _packed_size(art, sparsity, run_dir, notes)
    return CandidateRecord(
        name=spec.name,
        recipe=spec.recipe_dicts(),
        family=family_of(spec.recipe),
        metric={"name": task.metric.name, "value": value, "unit": task.metric.unit,
                "extras": values, **spread},
        metric_drop=0.0 if baseline_value is None else task.metric.drop(baseline_value, value),
        size_bytes=figures["size"],
        size_compressed_bytes=figures["compressed"],
        size_encoded_bytes=encoded,
        latency_ms={**by_threads[main], "threads": int(main), "batch": 1,
                    "by_threads": by_threads, "source": figures.get("latency_source", "measured"),
                    **({"estimated_on": figures["latency_device"]}
                       if "latency_device" in figures else {})},
        peak_memory_mb=figures["peak_mb"],
        params=count_params(art.model),
        macs=macs,
        activation_elems=act,
        sparsity=sparsity,
        sparsity_kind=sparsity_kind_of(spec.recipe),
        precision=art.precision,
        runtime=art.runtime,
        artifact=str(Path(figures["path"]).relative_to(run_dir)),
        notes=notes,
    )


def _packed_size(art: Artifact, sparsity: float, run_dir: Path, notes: dict) -> int | None:
    """Bytes of the packed file, written and round-trip checked; a computed size that no
    file backs (``art.size_encoded_bytes``) is kept as a note only, never as the size."""
    if art.size_encoded_bytes:
        notes["bitpacked_bytes_computed"] = int(art.size_encoded_bytes)
    if art.path.suffix != ".onnx" or not (art.runtime == "simulated" or sparsity > 0.01):
        return None  # zeros and codebooks only pay off in the packed storage form
    packed = pack_onnx(art.path)
    notes["packed_artifact"] = str(packed.relative_to(run_dir))
    return packed.stat().st_size


def _reusable(run: RunRecord, spec: CandidateSpec, folder: RunFolder,
              note: Callable[[str], None] | None, device=None) -> CandidateRecord | None:
    """The previous record of ``spec`` if every file it wrote still has its recorded sha256
    and its INT8 weight format is the one this run would build (a resume with another
    ``--device``, or on another host, may need the other one)."""
    for rec in run.all_candidates():
        if rec.name == spec.name and rec.recipe == spec.recipe_dicts():
            why = folder.verify(spec.name) or _format_changed(rec, device)
            if why is None:
                return rec
            if note:
                note(f"rebuilding: {why}")
    return None


def _format_changed(rec: CandidateRecord, device) -> str | None:
    """Why ``rec``'s ONNX Runtime INT8 file is not the one this run would build, or None:
    its weights were chosen from CPU flags that now give the other format."""
    fmt = rec.notes.get("int8_format")
    if not isinstance(fmt, dict) or fmt.get("chosen_by") != "cpu flags":
        return None
    from edgeshrink.targets.onnxruntime import int8_format

    now = int8_format(_cpu_of(device).get("cpu_flags"))["reduce_range"]
    if bool(fmt.get("reduce_range")) == now:
        return None
    bits = "7-bit (reduce_range)" if now else "8-bit"
    return f"this run's CPU ({'device ' + device.name if device else 'this host'}) needs {bits} weights"


def _cpu_of(device) -> dict:
    """The TransformContext fields that make files for ``device``'s CPU (a profile without
    ``cpu_flags``: this machine's; no device: nothing, this machine)."""
    if device is None:
        return {}
    return {"cpu_flags": tuple(device.cpu_flags) or None, "device": device.name}


def _build(spec: CandidateSpec, task: Task, art_dir: Path, on_step,
           device=None) -> tuple[Artifact, float]:
    """Build ``spec``; with ``device`` (a profile) its files are for that device's CPU
    (:attr:`~edgeshrink.devices.Profile.cpu_flags`; none listed: this machine's)."""
    start = time.perf_counter()
    ctx = TransformContext(task=task, workdir=art_dir, name=spec.name, seed=task.seed,
                           on_step=on_step, **_cpu_of(device))
    return apply_recipe(list(spec.recipe), ctx), time.perf_counter() - start


def evaluate_candidate(
    spec: CandidateSpec,
    task: Task,
    run_dir: Path,
    *,
    baseline_value: float | None,
    art_dir: Path | None = None,
    threads: tuple[int, ...] = (1, 2),
    budget_s: float = 1.0,
    on_step: Callable[[str], None] | None = None,
    device=None,
) -> CandidateRecord:
    """Build ``spec`` into ``art_dir`` (default ``run_dir/artifacts``) and measure it exactly
    as :func:`run_study` does each candidate (the search evaluates its trials with this);
    ``device``: the profile the files are built for, as in :func:`run_study`."""
    art_dir = Path(art_dir) if art_dir is not None else Path(run_dir) / "artifacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    art, seconds = _build(spec, task, art_dir, on_step, device)
    if on_step:
        on_step("measure")
    rec = measure_artifact(art, spec, task, Path(run_dir), baseline_value=baseline_value,
                           threads=threads, budget_s=budget_s)
    rec.seconds = round(seconds, 2)
    return rec


def run_study(
    task: Task,
    plan: list[CandidateSpec],
    out: Path | str,
    *,
    resume: bool = False,
    force: bool = False,
    threads: tuple[int, ...] = (1, 2),
    budget_s: float = 1.0,
    sensitivity: bool = False,
    on_progress: Callable[[str, str], None] | None = None,
    device=None,
) -> RunRecord:
    """Build and measure the baseline and every candidate of ``plan`` into ``out``.

    ``budget_s`` is the timing budget per thread count (after warm-up, at least 50 runs).
    ``sensitivity`` adds the per-layer scans of :func:`sensitivity_scan` to the record.
    ``on_progress(candidate, step)`` is called as work advances (the CLI draws a bar).
    ``device`` (a :class:`~edgeshrink.devices.Profile`, ``study --device``): files whose
    format depends on the CPU (ONNX Runtime INT8) are built for the device's CPU.
    ``results.json`` is rewritten after every candidate. ``out`` must be new, empty, or a
    run of the same task (``resume`` continues it, ``force`` replaces it): see
    :mod:`edgeshrink.study.rundir`.
    """
    run_dir = Path(out)
    folder = RunFolder.open(run_dir, task.name, model_fingerprint(task.model), resume=resume,
                            force=force)
    folder.check_collisions(s.name for s in plan)
    art_dir = run_dir / "artifacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_run(folder, on_progress) if resume else None
    run = RunRecord(
        task=task.name,
        metric={"name": task.metric.name, "unit": task.metric.unit,
                "higher_is_better": task.metric.higher_is_better},
        machine=machine_info(),
        created=(previous.created if previous and previous.created  # resumed: same run
                 else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
        description=task.description,
    )
    if sensitivity:
        if on_progress:
            on_progress("sensitivity", "per-layer scan")
        run.sensitivity = (previous.sensitivity if previous and previous.sensitivity
                           else sensitivity_scan(task))
    specs = [CandidateSpec(BASELINE, ())] + list(plan)
    for spec in specs:
        note = (lambda step, n=spec.name: on_progress(n, step)) if on_progress else None
        rec = _reusable(previous, spec, folder, note, device) if previous else None
        before = folder.snapshot()
        built = rec is None
        if built:
            try:
                art, seconds = _build(spec, task, art_dir, note, device)
            except Exception as exc:
                _failed(run, folder, spec, _failure_text(exc, spec), before, on_progress)
                continue
            if note:
                note("measure")
            base = run.baseline.value if run.baseline else None
            try:
                rec = measure_artifact(art, spec, task, run_dir, baseline_value=base,
                                       threads=threads, budget_s=budget_s)
            except Exception as exc:  # its runtime cannot load or run the file it built
                _failed(run, folder, spec, _failure_text(exc, spec), before, on_progress)
                continue
            rec.seconds = round(seconds, 2)
        if spec.name == BASELINE:
            run.baseline = rec
        else:
            run.candidates.append(rec)
        run.pareto = pareto_front(run.all_candidates(),
                                  higher_is_better=task.metric.higher_is_better)
        if built:  # hashes before results.json: a kill in between only costs a rebuild
            folder.record_new(spec.name, before)
        _save(run, folder)
        if on_progress:
            on_progress(spec.name, "done")
    return run


def _failure_text(exc: Exception, spec: CandidateSpec) -> str:
    """The one sentence a failed candidate's record keeps, from the exception that building
    or measuring it raised; raises ``exc`` again where the study must stop: the baseline,
    ``EDGESHRINK_DEBUG``, a full disk (the machine, not the method: every later candidate
    would fail too). Not only UserError becomes a sentence: a third-party library failing
    inside one method (e.g. a layer its dependency graph did not trace) must not lose the
    whole study."""
    if spec.name == BASELINE or os.environ.get("EDGESHRINK_DEBUG"):
        raise exc
    if isinstance(exc, DiskFullError) or getattr(exc, "errno", None) in DISK_FULL:
        raise exc
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def _failed(run: RunRecord, folder: RunFolder, spec: CandidateSpec, error: str, before,
            on_progress) -> None:
    """Record ``spec`` as failed with ``error`` (one sentence) and go on with the study."""
    run.failed.append({"name": spec.name, "recipe": spec.recipe_dicts(), "error": error})
    folder.record_new(None, before)
    _save(run, folder)
    if on_progress:
        on_progress(spec.name, "done")


def _previous_run(folder: RunFolder, on_progress) -> RunRecord | None:
    """The run to resume: its results.json, if it is the one the study wrote last."""
    from edgeshrink.bench.session import sha256_file
    from edgeshrink.results import load_run

    path = folder.path / "results.json"
    if not path.is_file():
        return None
    if sha256_file(path) != folder.files.get("results.json"):
        if on_progress:
            on_progress("results.json", "rebuilding every candidate: it does not match the "
                        "sha256 recorded when it was written")
        return None
    return load_run(folder.path)


def _save(run: RunRecord, folder: RunFolder) -> None:
    save_run(run, folder.path)
    folder.record(None, ["results.json"])


def sensitivity_scan(task: Task) -> dict:
    """Per-layer sensitivity of the task's model to pruning and to quantization.

    ``{"sparsity": {...}, "bits": {...}}`` in the schema the report draws as heat maps:
    the metric on the calibration set with one layer alone pruned to each sparsity level
    (magnitude) or quantized to each bit width.
    """
    from edgeshrink.prune.sensitivity import scan
    from edgeshrink.quant.mixed import layer_sensitivity

    return {
        "sparsity": scan(task.model, task)["sparsity"],
        "bits": layer_sensitivity(task.model, task.calibration, task.metric),
    }
