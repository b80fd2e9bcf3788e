"""The advisor: from a study's result records and a device profile to one recommendation.

It works on result records only, never on models. Every candidate gets a latency and energy
figure for the device: a roofline *estimate* (``devices.estimate``), replaced by a
measurement where one exists (latencies a study measured when the profile is the study
host, or ``edgeshrink bench`` figures passed in ``measured``); its size is the file that
ships on the device (:func:`ship_size`). Candidates that do not fit the device's memory are
dropped first; then the constraints (``--max-drop`` against the upper end of the drop's
95 % interval unless ``drop_estimate="point"``); then the best on the priority wins. Among
those within 2 % of the best on the priority, the most accurate wins, except that
candidates the evaluation set cannot tell apart on the metric (:mod:`edgeshrink.ties`) are
*tied on accuracy* and the priority decides between them; the reasons say so.

Recommendation schema (stored in ``RunRecord.recommendation``)::

    {"candidate": str | None,   # None: nothing qualifies, see "error" and "nearest"
     "device": str, "priority": "accuracy"|"size"|"speed"|"energy",
     "constraints": {"max_size_bytes": int|None, "max_latency_ms": float|None,
                     "max_drop": float|None, "max_energy_mj": float|None,
                     "drop_estimate": "upper"|"point"},
     "verdict": str,            # one line: what to do on this device, and what it buys
     "binding": [str],          # names from "memory", "max_size", "max_latency", "max_drop",
                                # "max_energy" that excluded a candidate better on the priority
     "reasons": [str],          # plain sentences, the first one says what was chosen and why
     "tied": [{"name": str, "how": str, "p": float|None}],   # tied on accuracy with it
     "alternatives": [{"name": str, "why_not": str}],
     "error": str, "nearest": [{"constraint", "candidate", "value", "limit", "text"}],
     "estimates": {name: {"latency_ms": float, "energy_mj": float, "fits_memory": bool,
                          "accelerated": bool, "latency_source": "estimate"|"measured"|str,
                          "size_bytes": int, "size_form": "file"|"packed file",
                          "ram_bytes": int, "bound": str, "drop": float,
                          "drop_ci95": [lo, hi]|None}}}

Example:
    >>> rec = recommend(load_run("runs/demo"), "rpi4", Constraints(max_drop=1.0), "size")
    >>> rec["candidate"], rec["reasons"][0]
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeshrink.config import check_choice
from edgeshrink.devices import PRIORITIES, Profile, load_profile
from edgeshrink.devices.estimate import estimate, workload_from_candidate
from edgeshrink.errors import NoCandidateError, UserError
from edgeshrink.recommended import clear_recommended, copy_recommended
from edgeshrink.results import CandidateRecord, RunRecord
from edgeshrink.ties import Tie, accuracy_tie, drop_ci, load_samples

__all__ = ["Constraints", "parse_size", "parse_latency", "recommend", "copy_recommended",
           "advise_run", "candidate_figures", "ship_size", "budget_drop", "NoFit",
           "clear_recommended"]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME_UNITS = {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
_TIE = 0.02  # candidates within 2 % of the best on the priority count as equal


def parse_size(text: str | int | float | None) -> int | None:
    """Bytes from ``"200kB"``, ``"1.5MB"``, ``"512KiB"``, ``"4096"``.

    SI units as every size is shown (kB = 1000 bytes, MB = 10^6); IEC KiB/MiB (1024) are
    accepted too and converted to bytes.

    Example:
        >>> parse_size("200KB")
        200000
    """
    if text is None or isinstance(text, int | float):
        return None if text is None else int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise UserError(f"size {text!r} is not a size; write e.g. 200kB, 1.5MB or 512KiB.")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_latency(text: str | int | float | None) -> float | None:
    """Milliseconds from ``"5ms"``, ``"250us"``, ``"0.1s"`` or a bare number of ms.

    Example:
        >>> parse_latency("250us")
        0.25
    """
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zµ]*)\s*", str(text).lower())
    if not m or m.group(2) not in _TIME_UNITS:
        raise UserError(f"latency {text!r} is not a duration; write e.g. 5ms, 250us or 0.1s.")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def _parse_energy(text: str | int | float | None) -> float | None:
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(mj|uj|µj|j)?\s*", str(text).lower())
    if not m:
        raise UserError(f"energy {text!r} is not an energy; write e.g. 2mJ, 500uJ or 0.01J.")
    scale = {"j": 1e3, "uj": 1e-3, "µj": 1e-3}.get(m.group(2) or "mj", 1.0)
    return float(m.group(1)) * scale


DROP_ESTIMATES = ("upper", "point")


@dataclass(frozen=True)
class Constraints:
    """What the deployment must meet; None means no limit.

    Attributes:
        max_size_bytes: bytes of the file that ships on the device (``--max-size``).
        max_latency_ms: batch-1 latency on the device (``--max-latency``).
        max_drop: metric points the candidate may lose against the baseline (``--max-drop``).
        max_energy_mj: energy per inference on the device (``--max-energy``).
        drop_estimate: ``upper`` checks ``max_drop`` against the upper end of the drop's
            95 % interval (the loss the evaluation set cannot rule out), ``point`` against
            the measured drop itself (``--drop-estimate``).

    Example:
        >>> Constraints.from_text(max_size="200kB", max_latency="5ms").max_size_bytes
        200000
    """

    max_size_bytes: int | None = None
    max_latency_ms: float | None = None
    max_drop: float | None = 1.0
    max_energy_mj: float | None = None
    drop_estimate: str = "upper"

    def __post_init__(self) -> None:
        check_choice("drop_estimate", self.drop_estimate, DROP_ESTIMATES)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "drop_estimate" or value is None:
                continue
            if not math.isfinite(value) or value < 0 or (f.name != "max_drop" and value <= 0):
                low = "a finite number >= 0" if f.name == "max_drop" else "a positive finite number"
                raise UserError(f"{f.name} must be {low}, got {value}.")

    @classmethod
    def from_text(cls, *, max_size=None, max_latency=None, max_drop=1.0,
                  max_energy=None, drop_estimate="upper") -> Constraints:
        """Constraints from command-line text (``"200kB"``, ``"5ms"``, ``1.0``, ``"2mJ"``)."""
        return cls(parse_size(max_size), parse_latency(max_latency),
                   None if max_drop is None else float(max_drop), _parse_energy(max_energy),
                   drop_estimate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ship_size(c: CandidateRecord, profile: Profile) -> tuple[int, str]:
    """(bytes, which file) of what ships on ``profile``'s storage.

    The packed file (``notes["packed_artifact"]``, written and round-trip checked by the
    study) counts where the device loads weights into RAM (it is decoded there at load); a
    device that executes weights from flash stores the file its runtime runs.
    """
    packed = (c.notes or {}).get("packed_artifact")
    if (packed and c.size_encoded_bytes and c.size_encoded_bytes < c.size_bytes
            and profile.weights_in == "ram"):
        return int(c.size_encoded_bytes), "packed file"
    return int(c.size_bytes), "file"


def budget_drop(c: CandidateRecord, mode: str = "upper") -> float:
    """The drop ``--max-drop`` is checked against: the interval's upper end, or the point."""
    ci = drop_ci(c)
    return ci[1] if mode == "upper" and ci else float(c.metric_drop)


@dataclass(frozen=True)
class _Figures:
    """One candidate on one device: what the advisor compares."""

    rec: CandidateRecord
    latency_ms: float
    energy_mj: float
    size_bytes: int
    size_form: str
    ram_bytes: int
    fits_ram: bool
    fits_storage: bool
    accelerated: bool
    latency_source: str
    bound: str
    notes: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.fits_ram and self.fits_storage

    @property
    def drop(self) -> float:
        return float(self.rec.metric_drop)

    def as_dict(self) -> dict[str, Any]:
        ci = drop_ci(self.rec)
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj,
                "fits_memory": self.fits, "accelerated": self.accelerated,
                "latency_source": self.latency_source, "size_bytes": self.size_bytes,
                "size_form": self.size_form, "ram_bytes": self.ram_bytes, "bound": self.bound,
                "drop": self.drop, "drop_ci95": list(ci) if ci else None}


def _measured_latency(c: CandidateRecord, profile: Profile, measured: dict) -> tuple | None:
    """(ms, source) measured on this device, or None: the estimate stands."""
    if c.name in measured:
        ms, source = measured[c.name]
        return float(ms), str(source)
    lat = c.latency_ms or {}
    if profile.study_host and lat.get("source", "measured") == "measured" and c.runtime != "simulated":
        by = (lat.get("by_threads") or {}).get(str(profile.threads))
        if by and "p50" in by:
            return float(by["p50"]), "measured"
        if int(lat.get("threads", profile.threads)) == profile.threads and "p50" in lat:
            return float(lat["p50"]), "measured"
    if lat.get("device") in (profile.name, *profile.aliases) and "p50" in lat:
        return float(lat["p50"]), str(lat.get("source", "measured"))
    return None


def candidate_figures(c: CandidateRecord, profile: Profile,
                      measured: dict | None = None) -> _Figures:
    """Latency, energy, size and memory fit of one candidate on ``profile`` (estimates
    unless measured; the size is the file that ships, see :func:`ship_size`)."""
    est = estimate(workload_from_candidate(c), profile)
    latency, source, energy = est.latency_ms, "estimate", est.energy_mj
    got = _measured_latency(c, profile, measured or {})
    if got is not None:
        latency, source = got
        # the static share of energy follows the real duration (Horowitz's op energy stays)
        energy += profile.energy.get("static_power_w", 0.0) * (latency - est.latency_ms)
    size, form = ship_size(c, profile)
    return _Figures(c, latency, max(energy, 0.0), size, form, int(est.ram_bytes),
                    est.fits_ram, size <= profile.storage_bytes, est.accelerated, source,
                    est.bound, est.notes)


# ---------------------------------------------------------------- selection


def _violations(f: _Figures, cons: Constraints) -> dict[str, tuple[float, float]]:
    """Constraint name -> (value, limit) for every constraint ``f`` fails."""
    checks = {"max_size": (f.size_bytes, cons.max_size_bytes),
              "max_latency": (f.latency_ms, cons.max_latency_ms),
              "max_drop": (budget_drop(f.rec, cons.drop_estimate), cons.max_drop),
              "max_energy": (f.energy_mj, cons.max_energy_mj)}
    return {k: (v, lim) for k, (v, lim) in checks.items() if lim is not None and v > lim}


def _score(f: _Figures, priority: str) -> float:
    return {"accuracy": f.drop, "size": float(f.size_bytes),
            "speed": f.latency_ms, "energy": f.energy_mj}[priority]


_RESOURCES = ("size", "speed", "energy")


def _resources(f: _Figures, priority: str) -> tuple[float, ...]:
    """How a tie on accuracy is decided: the priority, then the other resources, then the
    simpler recipe (a step that changes nothing on the device is not worth shipping), then
    the drop. :func:`decided_by` names the component that decided."""
    res = {"size": float(f.size_bytes), "speed": f.latency_ms, "energy": f.energy_mj}
    first = priority if priority in res else "size"
    order = [first] + [k for k in _RESOURCES if k != first]
    return (*(res[k] for k in order), float(len(f.rec.recipe)), f.drop)


def decided_by(winner: _Figures, loser: _Figures, priority: str) -> str:
    """Which of priority/other resources/"simpler recipe"/"drop" told ``winner`` from
    ``loser`` (``"order"`` when all are equal)."""
    first = priority if priority in _RESOURCES else "size"
    names = [first] + [k for k in _RESOURCES if k != first] + ["simpler recipe", "drop"]
    for name, a, b in zip(names, _resources(winner, priority), _resources(loser, priority),
                          strict=True):
        if abs(a - b) > 1e-9 * max(abs(a), abs(b), 1.0):
            return name
    return "order"


@dataclass(frozen=True)
class _Choice:
    chosen: _Figures
    tied: tuple[tuple[_Figures, Tie, str], ...]  # tied on accuracy with the chosen one, and
    # what told them apart (decided_by)
    decided_on: str  # the resource that decided among the tied ("size", "speed", "energy")


def _pick(figs: list[_Figures], priority: str, samples: dict, higher: bool) -> _Choice:
    """Best on the priority; among those within 2 % of it, the most accurate, where every
    candidate the evaluation set cannot tell from the most accurate one counts as tied and
    the tie is decided on the priority (on size first when the priority is accuracy)."""
    if priority == "accuracy":
        near = figs
    else:
        best = min(_score(f, priority) for f in figs)
        near = [f for f in figs if _score(f, priority) <= best + abs(best) * _TIE]
    top = min(near, key=lambda f: (f.drop, _resources(f, priority)))
    ties = [(f, accuracy_tie(f.rec, top.rec, samples, higher_is_better=higher))
            for f in near if f is not top]
    group = [top] + [f for f, t in ties if t is not None]
    decided = priority if priority != "accuracy" else "size"
    chosen = min(group, key=lambda f: _resources(f, decided))
    tied = tuple((f, accuracy_tie(f.rec, chosen.rec, samples, higher_is_better=higher)
                  or Tie("tied with the most accurate"), decided_by(chosen, f, decided))
                 for f in group if f is not chosen)
    return _Choice(chosen, tied, decided)


def _binding(chosen: _Figures, fitting: list[_Figures], figs: list[_Figures],
             cons: Constraints, priority: str) -> list[str]:
    """Constraints (and memory) that excluded a candidate better on the priority."""
    target = _score(chosen, priority)
    out: list[str] = []
    for f in figs:
        if _score(f, priority) >= target or f is chosen:
            continue
        names = list(_violations(f, cons)) if f in fitting else ["memory"]
        out += [n for n in names if n not in out]
    order = ("memory", "max_size", "max_latency", "max_drop", "max_energy")
    return [n for n in order if n in out]


def recommend(run: RunRecord, profile: str | Profile, constraints: Constraints | None = None,
              priority: str | None = None, *, measured: dict | None = None,
              samples: dict | None = None) -> dict[str, Any]:
    """The candidate of ``run`` to deploy on ``profile``, with the reasons (schema: module doc).

    Args:
        measured: ``{candidate name: (p50 ms, source)}`` from ``edgeshrink bench`` on the
            device; these replace the estimates.
        priority: accuracy, size, speed or energy; None uses the profile's default.
        samples: ``{candidate name: per-sample scores}`` (:func:`edgeshrink.ties.load_samples`)
            for the paired tests that decide which candidates are tied on accuracy.

    Raises:
        NoFit: nothing fits the device or meets the constraints; the message names the
            constraint that cannot be met and the nearest candidate; ``.record`` holds it
            as data for results.json.
    """
    from edgeshrink import explain

    profile = load_profile(profile)
    cons = constraints or Constraints()
    priority = priority or profile.default_priority
    check_choice("priority", priority, PRIORITIES)
    figs = [candidate_figures(c, profile, measured) for c in run.all_candidates()]
    if not figs:
        raise UserError("the run has no candidates: run `edgeshrink study` first.")
    fitting = [f for f in figs if f.fits]
    ok = [f for f in fitting if not _violations(f, cons)]
    head = {"device": profile.name, "priority": priority, "constraints": cons.to_dict(),
            "estimates": {f.rec.name: f.as_dict() for f in figs}}
    if not ok:
        message, nearest = explain.no_fit(figs, fitting, cons, profile, _violations)
        raise NoFit(message, {**head, "candidate": None, "error": message, "nearest": nearest})
    higher = bool((run.metric or {}).get("higher_is_better", True))
    choice = _pick(ok, priority, samples or {}, higher)
    binding = _binding(choice.chosen, fitting, figs, cons, priority)
    base = next((f for f in figs if run.baseline and f.rec.name == run.baseline.name), figs[0])
    return {
        **head, "candidate": choice.chosen.rec.name, "binding": binding,
        "verdict": explain.verdict(choice.chosen, base, figs, profile),
        "reasons": explain.reasons(choice, base, figs, binding, cons, profile, priority),
        "tied": [{"name": f.rec.name, "how": t.how, "p": t.p, "decided_by": by}
                 for f, t, by in choice.tied],
        "alternatives": [{"name": f.rec.name, "why_not": explain.why_not(
            f, choice, cons, profile, priority, _violations)} for f in figs
            if f is not choice.chosen],
    }


class NoFit(NoCandidateError):
    """No candidate qualifies (exit code 3); ``record`` is the failed recommendation as data."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


# ---------------------------------------------------------------- hand-over
# RUN/recommended/ (the runtime's own files and loading code): edgeshrink.recommended


def advise_run(run_dir: Path | str, device: str | Profile, constraints: Constraints | None = None,
               priority: str | None = None, *, measured: dict | None = None) -> dict[str, Any]:
    """Recommend for ``device``, store it in ``RUN/results.json``, copy the artifact out.

    The study calls this at its end when ``--device`` is given.

    Example:
        >>> rec = advise_run("runs/demo", "cortex-m7", Constraints(max_size_bytes=200_000))
    """
    from edgeshrink.results import load_run, save_run

    run = load_run(run_dir)
    profile = load_profile(device)
    _fill_node_counts(Path(run_dir), run)
    run.device = profile.summary()
    try:
        rec = recommend(run, profile, constraints, priority, measured=measured,
                        samples=load_samples(run_dir, run))
    except NoFit as exc:  # the old pick no longer holds: clear it, record why nothing fits
        run.constraints, run.recommendation = exc.record["constraints"], exc.record
        clear_recommended(run_dir)
        save_run(run, run_dir)
        raise
    run.constraints = rec["constraints"]
    run.recommendation = rec
    copy_recommended(run_dir, run, rec)  # first: a missing artifact leaves results.json as it was
    save_run(run, run_dir)
    return rec


def _fill_node_counts(run_dir: Path, run: RunRecord) -> None:
    """Per-node runtime overhead needs the graph size: count what ORT runs of each artifact;
    runs recorded before the split also get the MACs by the precision each op runs in."""
    from edgeshrink.measure.op_precision import macs_by_precision

    for c in run.all_candidates():
        path = run_dir / c.artifact
        if "macs_by_precision" not in c.notes and c.runtime != "simulated" and path.is_file():
            split = macs_by_precision(path)  # None for an unreadable file: the label stands
            if split:
                c.notes["macs_by_precision"] = split
        if "onnx_nodes" in c.notes or path.suffix != ".onnx" or not path.is_file():
            continue
        try:
            from edgeshrink.measure.artifact import runtime_node_count

            c.notes["onnx_nodes"] = runtime_node_count(path)
        except Exception:  # a damaged artifact only costs the estimate its node count
            continue
