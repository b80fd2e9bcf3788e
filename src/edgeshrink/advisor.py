"""The advisor: from a study's result records and a device profile to one recommendation.

It works on result records only, never on models. Every candidate gets a latency and energy
figure for the device: a roofline *estimate* (``devices.estimate``), replaced by a
measurement where one exists (latencies a study measured when the profile is the study
host, or ``edgeshrink bench`` figures passed in ``measured``). Candidates that do not fit
the device's memory are dropped first; then the constraints; then the best on the priority
wins (ties within 2 % broken by metric drop, then size).

Recommendation schema (stored in ``RunRecord.recommendation``)::

    {"candidate": str, "device": str, "priority": "accuracy"|"size"|"speed"|"energy",
     "constraints": {"max_size_bytes": int|None, "max_latency_ms": float|None,
                     "max_drop": float|None, "max_energy_mj": float|None},
     "binding": [str],          # names from "memory", "max_size", "max_latency", "max_drop",
                                # "max_energy" that excluded a candidate better on the priority
     "reasons": [str],          # plain sentences, the first one says what was chosen and why
     "alternatives": [{"name": str, "why_not": str}],
     "estimates": {name: {"latency_ms": float, "energy_mj": float, "fits_memory": bool,
                          "accelerated": bool, "latency_source": "estimate"|"measured"|str,
                          "size_bytes": int, "ram_bytes": int, "bound": str}}}

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
from edgeshrink.results import CandidateRecord, RunRecord

__all__ = ["Constraints", "parse_size", "parse_latency", "recommend", "copy_recommended",
           "advise_run", "candidate_figures"]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME_UNITS = {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}
_TIE = 0.02  # candidates within 2 % of the best on the priority count as equal


def parse_size(text: str | int | float | None) -> int | None:
    """Bytes from ``"200KB"``, ``"1.5MiB"``, ``"4096"`` (KB = 1000 bytes, KiB = 1024).

    Example:
        >>> parse_size("200KB")
        200000
    """
    if text is None or isinstance(text, int | float):
        return None if text is None else int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise UserError(f"size {text!r} is not a size; write e.g. 200KB, 1.5MB or 512KiB.")
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


@dataclass(frozen=True)
class Constraints:
    """What the deployment must meet; None means no limit.

    Attributes:
        max_size_bytes: bytes of the artifact on the device's storage (``--max-size``).
        max_latency_ms: batch-1 latency on the device (``--max-latency``).
        max_drop: metric points the candidate may lose against the baseline (``--max-drop``).
        max_energy_mj: energy per inference on the device (``--max-energy``).

    Example:
        >>> Constraints.from_text(max_size="200KB", max_latency="5ms").max_size_bytes
        200000
    """

    max_size_bytes: int | None = None
    max_latency_ms: float | None = None
    max_drop: float | None = 1.0
    max_energy_mj: float | None = None

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and (not math.isfinite(value) or value < 0
                                      or f.name != "max_drop" and value <= 0):
                low = "a finite number >= 0" if f.name == "max_drop" else "a positive finite number"
                raise UserError(f"{f.name} must be {low}, got {value}.")

    @classmethod
    def from_text(cls, *, max_size=None, max_latency=None, max_drop=1.0,
                  max_energy=None) -> Constraints:
        """Constraints from command-line text (``"200KB"``, ``"5ms"``, ``1.0``, ``"2mJ"``)."""
        return cls(parse_size(max_size), parse_latency(max_latency),
                   None if max_drop is None else float(max_drop), _parse_energy(max_energy))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Figures:
    """One candidate on one device: what the advisor compares."""

    rec: CandidateRecord
    latency_ms: float
    energy_mj: float
    size_bytes: int
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

    def as_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj,
                "fits_memory": self.fits, "accelerated": self.accelerated,
                "latency_source": self.latency_source, "size_bytes": self.size_bytes,
                "ram_bytes": self.ram_bytes, "bound": self.bound}


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
    """Latency, energy, memory fit of one candidate on ``profile`` (estimates unless measured)."""
    est = estimate(workload_from_candidate(c), profile)
    latency, source, energy = est.latency_ms, "estimate", est.energy_mj
    got = _measured_latency(c, profile, measured or {})
    if got is not None:
        latency, source = got
        # the static share of energy follows the real duration (Horowitz's op energy stays)
        energy += profile.energy.get("static_power_w", 0.0) * (latency - est.latency_ms)
    return _Figures(c, latency, max(energy, 0.0), int(est.storage_bytes), int(est.ram_bytes),
                    est.fits_ram, est.fits_storage, est.accelerated, source, est.bound, est.notes)


# ---------------------------------------------------------------- selection


def _violations(f: _Figures, cons: Constraints) -> dict[str, tuple[float, float]]:
    """Constraint name -> (value, limit) for every constraint ``f`` fails."""
    checks = {"max_size": (f.size_bytes, cons.max_size_bytes),
              "max_latency": (f.latency_ms, cons.max_latency_ms),
              "max_drop": (f.rec.metric_drop, cons.max_drop),
              "max_energy": (f.energy_mj, cons.max_energy_mj)}
    return {k: (v, lim) for k, (v, lim) in checks.items() if lim is not None and v > lim}


def _score(f: _Figures, priority: str) -> float:
    return {"accuracy": f.rec.metric_drop, "size": float(f.size_bytes),
            "speed": f.latency_ms, "energy": f.energy_mj}[priority]


def _pick(figs: list[_Figures], priority: str) -> _Figures:
    best = min(_score(f, priority) for f in figs)
    tol = 0.05 if priority == "accuracy" else abs(best) * _TIE
    near = [f for f in figs if _score(f, priority) <= best + tol]
    return min(near, key=lambda f: (f.rec.metric_drop, f.size_bytes, f.latency_ms))


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _fmt_violation(name: str, value: float, limit: float) -> str:
    if name == "max_size":
        return f"size {_fmt_bytes(value)} > {_fmt_bytes(limit)}"
    if name == "max_latency":
        return f"latency {value:.3g} ms > {limit:.3g} ms"
    if name == "max_energy":
        return f"energy {value:.3g} mJ > {limit:.3g} mJ"
    return f"metric drop {value:.2f} > {limit:.2f} points"


def _memory_reason(f: _Figures, profile: Profile) -> str:
    if not f.fits_ram:
        return (f"it needs {_fmt_bytes(f.ram_bytes)} of RAM and {profile.name} offers "
                f"{_fmt_bytes(profile.ram_bytes)}")
    return (f"its {_fmt_bytes(f.size_bytes)} file exceeds the {_fmt_bytes(profile.storage_bytes)} "
            f"of storage on {profile.name}")


def _no_candidate(figs: list[_Figures], fitting: list[_Figures], cons: Constraints,
                  profile: Profile) -> UserError:
    if not fitting:
        small = min(figs, key=lambda f: f.ram_bytes)
        return NoCandidateError(f"no candidate fits in the memory of {profile.name}: the nearest, "
                         f"{small.rec.name}, does not because {_memory_reason(small, profile)}; "
                         "prune or quantize harder, or pick a larger device.")
    alone = [k for k in ("max_size", "max_latency", "max_drop", "max_energy")
             if all(k in _violations(f, cons) for f in fitting)]

    def distance(f: _Figures) -> float:
        return sum(v / lim - 1 if k != "max_drop" else (v - lim) / max(lim, 1.0)
                   for k, (v, lim) in _violations(f, cons).items())

    near = min(fitting, key=distance)
    misses = "; ".join(_fmt_violation(k, *v) for k, v in _violations(near, cons).items())
    what = (f"{' and '.join(alone)} cannot be met by any candidate" if alone
            else "the constraints cannot be met together")
    return NoCandidateError(f"no candidate meets the constraints on {profile.name}: {what}; the "
                     f"nearest candidate is {near.rec.name} ({misses}); relax that limit.")


# ---------------------------------------------------------------- explanation


def _technique(c: CandidateRecord) -> str:
    parts = []
    if c.sparsity_kind not in ("none", "") and c.sparsity > 0:
        parts.append(f"{c.sparsity_kind} pruning {c.sparsity:.0%}")
    if c.precision != "fp32":
        parts.append(c.precision)
    return " + ".join(parts) or "no compression"


def _bought(f: _Figures, base: _Figures, profile: Profile) -> str:
    c = f.rec
    size = base.size_bytes / max(f.size_bytes, 1)
    speed = base.latency_ms / max(f.latency_ms, 1e-12)
    why = "; ".join(f.notes[:1]) or _gain_note(c, profile)
    return (f"{c.name} ({_technique(c)}) on {profile.name}: {size:.1f}x smaller, "
            f"{speed:.2f}x the baseline's speed ({f.latency_source}), "
            f"{c.metric_drop:+.2f} points of metric drop" + (f" — {why}." if why else "."))


def _gain_note(c: CandidateRecord, profile: Profile) -> str:
    parts = []
    if c.sparsity_kind == "structured" and c.sparsity > 0:
        parts.append("channels are physically removed, so fewer dense MACs run on any device")
    if c.precision != "fp32":
        parts.append(f"{c.precision} is accelerated on {profile.name}")
    return "; ".join(parts)


def _fmt_score(value: float, priority: str) -> str:
    if priority == "size":
        return _fmt_bytes(value)
    unit = {"accuracy": "points of drop", "speed": "ms", "energy": "mJ"}[priority]
    return f"{value:.4g} {unit}"


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


def _why_not(f: _Figures, chosen: _Figures, cons: Constraints, profile: Profile,
             priority: str) -> str:
    if not f.fits:
        return f"does not fit: {_memory_reason(f, profile)}."
    v = _violations(f, cons)
    if v:
        return "fails " + "; ".join(_fmt_violation(k, *x) for k, x in v.items()) + "."
    mine, best = _score(f, priority), _score(chosen, priority)
    pair = f"{_fmt_score(mine, priority)} vs {_fmt_score(best, priority)}"
    if mine <= best * (1 + _TIE) + (0.05 if priority == "accuracy" else 0):
        return (f"as good on {priority} ({pair}) but loses the "
                f"tie-break (metric drop {f.rec.metric_drop:.2f} vs {chosen.rec.metric_drop:.2f},"
                f" then size).")
    extra = ""
    if f.rec.sparsity_kind in ("unstructured", "n:m") and not f.accelerated:
        extra = f" ({f.notes[0]})" if f.notes else ""
    return f"worse on {priority}: {pair}{extra}."


def recommend(run: RunRecord, profile: str | Profile, constraints: Constraints | None = None,
              priority: str | None = None, *, measured: dict | None = None) -> dict[str, Any]:
    """The candidate of ``run`` to deploy on ``profile``, with the reasons (schema: module doc).

    Args:
        measured: ``{candidate name: (p50 ms, source)}`` from ``edgeshrink bench`` on the
            device; these replace the estimates.
        priority: accuracy, size, speed or energy; None uses the profile's default.

    Raises:
        UserError: nothing fits the device or meets the constraints; the message names the
            constraint that cannot be met and the nearest candidate.
    """
    profile = load_profile(profile)
    cons = constraints or Constraints()
    priority = priority or profile.default_priority
    check_choice("priority", priority, PRIORITIES)
    figs = [candidate_figures(c, profile, measured) for c in run.all_candidates()]
    if not figs:
        raise UserError("the run has no candidates: run `edgeshrink study` first.")
    fitting = [f for f in figs if f.fits]
    ok = [f for f in fitting if not _violations(f, cons)]
    if not ok:
        raise _no_candidate(figs, fitting, cons, profile)
    chosen = _pick(ok, priority)
    binding = _binding(chosen, fitting, figs, cons, priority)
    base = next((f for f in figs if run.baseline and f.rec.name == run.baseline.name), figs[0])
    c = chosen.rec
    reasons = [
        f"On {profile.name} with priority {priority}, {c.name} ({_technique(c)}) is best: "
        f"{_fmt_bytes(chosen.size_bytes)}, {chosen.latency_ms:.3g} ms ({chosen.latency_source}"
        f"{'' if chosen.latency_source != 'estimate' else ', roofline'}), "
        f"{chosen.energy_mj:.3g} mJ per inference (estimate), metric drop "
        f"{c.metric_drop:.2f} points.",
        ("Binding: " + ", ".join(binding) + " excluded candidates that were better on "
         f"{priority}." if binding else "No constraint binds: the choice is the best on "
         f"{priority} among all candidates that fit {profile.name}."),
    ]
    reasons += [_bought(f, base, profile) for f in figs if f is not base]
    if c.runtime == "simulated":
        reasons.append(f"{c.name}'s figures here are simulated (no ONNX Runtime kernel for its "
                       f"format); deploy it with {profile.runtime or 'a runtime that runs it'}.")
    return {
        "candidate": c.name, "device": profile.name, "priority": priority,
        "constraints": cons.to_dict(), "binding": binding, "reasons": reasons,
        "alternatives": [{"name": f.rec.name, "why_not": _why_not(f, chosen, cons, profile,
                                                                   priority)}
                         for f in figs if f is not chosen],
        "estimates": {f.rec.name: f.as_dict() for f in figs},
    }


# ---------------------------------------------------------------- hand-over


_README = """# {candidate} for {device}

Recommended by edgeshrink for **{description}** (priority: {priority}).

{reasons}

## Run it with ONNX Runtime

```python
import numpy as np, onnxruntime as ort
opts = ort.SessionOptions(); opts.intra_op_num_threads = {threads}
sess = ort.InferenceSession("{artifact}", opts, providers=["CPUExecutionProvider"])
x = np.zeros([d if isinstance(d, int) else 1 for d in sess.get_inputs()[0].shape], np.float32)
print(sess.run(None, {{sess.get_inputs()[0].name: x}})[0].shape)
```

On the device the runtime is: {runtime}.

## Measure it on the device

```
edgeshrink bench {artifact} --threads {threads} --json > bench-{device}.json
```

Figures above marked "estimate" are roofline estimates from the device profile; a bench
JSON measured on the device replaces them (`edgeshrink recommend RUN --device {device}
--bench-json bench-{device}.json`).
"""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def _md(text: str) -> str:
    """``text`` as literal Markdown: names from models and plans may hold ``*``, ``<``, ..."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def copy_recommended(run_dir: Path | str, run: RunRecord, rec: dict[str, Any]) -> Path:
    """Copy the recommended artifact to ``RUN/recommended/`` with a README for the device.

    The folder is built under a temporary name and renamed, so it is never half-written.
    """
    import os
    import shutil
    import tempfile

    from edgeshrink.results import atomic_write_text

    run_dir = Path(run_dir)
    cand = run.get(rec["candidate"])
    src = run_dir / cand.artifact
    if not src.is_file():
        raise UserError(f"artifact {src} of {cand.name} is missing; re-run the study.")
    profile = load_profile(rec["device"])
    tmp = Path(tempfile.mkdtemp(prefix=".recommended.", dir=run_dir))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 ignores the user's umask
        shutil.copy2(src, tmp / src.name)
        atomic_write_text(tmp / "README.md", _README.format(
            candidate=_md(cand.name), device=_md(profile.name),
            description=_md(profile.description), priority=rec["priority"],
            reasons="\n".join(f"- {_md(r)}" for r in rec["reasons"]),
            threads=profile.threads, artifact=src.name, runtime=profile.runtime or "ONNX Runtime"))
        dest, old = run_dir / "recommended", run_dir / ".recommended.old"
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


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
    rec = recommend(run, profile, constraints, priority, measured=measured)
    run.device = profile.summary()
    run.constraints = rec["constraints"]
    run.recommendation = rec
    copy_recommended(run_dir, run, rec)  # first: a missing artifact leaves results.json as it was
    save_run(run, run_dir)
    return rec


def _fill_node_counts(run_dir: Path, run: RunRecord) -> None:
    """Per-node runtime overhead needs the graph size: count what ORT runs of each artifact."""
    for c in run.all_candidates():
        path = run_dir / c.artifact
        if "onnx_nodes" in c.notes or path.suffix != ".onnx" or not path.is_file():
            continue
        try:
            from edgeshrink.measure.artifact import runtime_node_count

            c.notes["onnx_nodes"] = runtime_node_count(path)
        except Exception:  # a damaged artifact only costs the estimate its node count
            continue
