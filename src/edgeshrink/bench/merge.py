"""Put latencies measured on the real device into a study's results (host side only).

The user runs ``edgeshrink bench CANDIDATE.onnx --json --out pi4.json`` on the device,
copies the JSON back, and :func:`apply_device_bench` replaces the local latencies of the
candidates whose artifact it measured. A bench JSON is matched to a candidate by the
artifact's sha256 (recorded in the JSON), else by a file name that is unique in the run.

Given the device the figures are for, a JSON whose machine is not that device (another
architecture, other cores, a microcontroller that cannot run the bench at all:
:func:`machine_mismatch`) is not taken as its latency: the candidate keeps its own figures,
the JSON is recorded under ``notes["device_bench"]`` with ``"machine_mismatch"`` saying why,
and a warning says so.

Example:
    >>> run = apply_device_bench(load_run("runs/demo"), [Path("pi4.json")],
    ...                          run_dir="runs/demo")  # doctest: +SKIP
    >>> run.get("int8-static").latency_ms["source"]  # doctest: +SKIP
    'pi4.json'
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from edgeshrink.bench.runner import COMPARE_SCHEMA, SCHEMA
from edgeshrink.bench.session import sha256_file
from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord

__all__ = [
    "apply_device_bench", "load_bench_json", "device_measurements", "device_latencies",
    "merge_device_benches", "machine_mismatch", "mismatch_warnings",
]


def load_bench_json(path: Path | str) -> dict[str, Any]:
    """Read a bench or bench-compare JSON; a missing or foreign file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"bench file {path} does not exist; write it with `edgeshrink bench --out`."
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path} is not JSON ({exc}); give the file `edgeshrink bench --out` wrote."
        ) from None
    if not isinstance(data, dict) or data.get("schema") not in (SCHEMA, COMPARE_SCHEMA):
        raise UserError(f"{path} is not an edgeshrink bench report (no schema {SCHEMA!r}).")
    try:
        device_measurements(data, path.name)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"{path} is a damaged edgeshrink bench report (field {exc} is missing "
                        "or of the wrong type); measure again with `edgeshrink bench --out`.") \
            from None
    return data


def device_measurements(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """One entry per model measured in a bench JSON: identity, latency, threads, machine."""
    models = data["models"] if data["schema"] == COMPARE_SCHEMA else [data]
    out = []
    for m in models:
        lat = m["latency_ms"]
        out.append({
            "sha256": m["model"]["sha256"],
            "name": m["model"]["name"],
            "threads": data["options"]["threads"],
            "batch": m.get("batch", 1),
            "stats": {q: lat[q] for q in ("p50", "p90", "p99", "mean", "min", "max")},
            "source": source,
            "machine": data.get("machine", {}),
            "runtime": m["model"].get("runtime", "onnxruntime"),
            "peak_rss_mb": m.get("peak_rss_mb"),
        })  # fmt: skip
    return out


# What a profile's name, description and runtime say about its CPU.
_X86_WORDS = re.compile(r"\b(x86|x86_64|amd64|xeon|epyc|ryzen|intel|core i[3579])\b", re.I)
_ARM_WORDS = re.compile(r"(cortex-[ax]\d|neoverse|aarch64|arm64|raspberry pi|jetson|snapdragon"
                        r"|apple m\d|graviton)", re.I)
_ARM_CORE = re.compile(r"\b(Cortex-[AX]\d+(?:AE|C)?|Neoverse-[NV]\d)\b", re.I)
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_VNNI = ("avx512_vnni", "avx_vnni")


def _profile_cpu(profile) -> tuple[str | None, list[str]]:
    """(architecture, Arm core names) the profile describes; None / [] where it says none."""
    text = f"{profile.name} {profile.description} {profile.runtime}"
    cores = [c.lower() for c in _ARM_CORE.findall(text)]
    if cores or _ARM_WORDS.search(text):
        return "aarch64", cores
    return ("x86_64" if _X86_WORDS.search(text) else None), []


def machine_mismatch(machine: dict[str, Any], profile) -> str | None:
    """Why a bench JSON's ``machine`` (as :func:`edgeshrink.bench.machine.machine_info`
    records it) is not the device ``profile`` describes, or None when nothing recorded
    contradicts it (an old JSON without machine facts is taken at its word).

    Compared: the architecture (``x86_64`` profiles vs ``aarch64`` ones, from the profile's
    name and description), the Arm cores a profile names (Raspberry Pi 4: Cortex-A72) against
    the cores the JSON recorded, VNNI where the profile's kernels need it, and whether the
    machine had the cores the profile runs on. A microcontroller runs no Python at all.

    Example:
        >>> machine_mismatch({"machine": "x86_64"}, load_profile("rpi4"))  # doctest: +SKIP
        'it was measured on an x86_64 CPU; raspberry-pi-4 is aarch64'
    """
    if profile.kind == "mcu":
        where = machine.get("cpu_model") or machine.get("machine") or "another machine"
        return (f"{profile.name} is a microcontroller, which cannot run edgeshrink bench: the "
                f"JSON was measured on {where}")
    arch, cores = _profile_cpu(profile)
    raw = str(machine.get("machine") or "").lower()
    got = _ARCH.get(raw, raw or None)
    if arch and got and got != arch:
        return f"it was measured on an {got} CPU; {profile.name} is {arch}"
    seen = [c.lower() for c in machine.get("cpu_core_types") or []]
    seen += [c.lower() for c in _ARM_CORE.findall(str(machine.get("cpu_model") or ""))]
    if cores and seen and not set(cores) & set(seen):
        return (f"it was measured on {', '.join(dict.fromkeys(machine.get('cpu_core_types') or seen))} "
                f"cores; {profile.name} has {', '.join(_ARM_CORE.findall(profile.description))}")
    flags = machine.get("cpu_flags") or []
    text = f"{profile.description} {profile.runtime}"
    if arch == "x86_64" and "vnni" in text.lower() and flags and not set(_VNNI) & set(flags):
        return (f"its CPU ({machine.get('cpu_model') or 'x86_64'}) has no VNNI, which "
                f"{profile.name}'s INT8 kernels use")
    count = machine.get("cpu_count")
    if profile.kind == "cpu" and isinstance(count, int):
        if count < profile.threads:
            return (f"its machine had {count} core(s); {profile.name} runs {profile.threads} "
                    "threads")
        if cores and count != profile.cores:
            return f"its machine had {count} cores; {profile.name} has {profile.cores}"
    return None


def _candidate_sha(cand: CandidateRecord, run_dir: Path | None) -> str | None:
    if cand.notes.get("sha256"):
        return str(cand.notes["sha256"])
    if run_dir is not None and cand.artifact and (run_dir / cand.artifact).is_file():
        return sha256_file(run_dir / cand.artifact)
    return None


def _match(meas: dict[str, Any], cands: list[CandidateRecord], shas: dict[str, str | None]):
    by_sha = [c for c in cands if shas[c.name] == meas["sha256"]]
    if by_sha:
        return by_sha
    by_name = [c for c in cands if c.artifact and Path(c.artifact).name == meas["name"]]
    return by_name if len(by_name) == 1 else []  # an ambiguous name matches nothing


def _apply(cand: CandidateRecord, found: list[dict[str, Any]]) -> None:
    local = cand.latency_ms
    by_threads = {str(m["threads"]): {**m["stats"], "source": m["source"]} for m in found}
    wanted = str(local.get("threads", found[0]["threads"]))
    main = next((m for m in found if str(m["threads"]) == wanted), found[-1])
    cand.latency_ms = {
        **main["stats"],
        "threads": main["threads"],
        "batch": main["batch"],
        "source": main["source"],
        "by_threads": by_threads,
        "device": {
            k: main["machine"].get(k) for k in ("cpu_model", "cpu_count", "cpu_flags", "machine")
        },
        "local": local,
    }
    cand.notes = {**cand.notes, "device_peak_rss_mb": main["peak_rss_mb"]}


def _record_mismatch(cand: CandidateRecord, meas: dict[str, Any], why: str) -> None:
    kept = [b for b in cand.notes.get("device_bench", []) if b.get("source") != meas["source"]]
    cand.notes = {**cand.notes, "device_bench": [*kept, {
        "source": meas["source"], "threads": meas["threads"], "p50": meas["stats"]["p50"],
        "machine": {k: meas["machine"].get(k) for k in ("cpu_model", "cpu_count", "machine")},
        "machine_mismatch": why}]}  # fmt: skip


def apply_device_bench(
    run: RunRecord, bench_jsons: list[Path | str], *, run_dir: Path | str | None = None,
    device=None,
) -> RunRecord:
    """A copy of ``run`` whose matched candidates carry the device's latencies.

    For each matched candidate ``latency_ms`` becomes the device's p50/p90/p99/mean/min/max
    at the JSON's thread count (the one equal to the local ``threads`` when several JSONs
    cover it), with ``source`` = the JSON file name, ``by_threads`` from the device only,
    and the local figures kept under ``local``. Unmatched candidates are left as they were.

    Args:
        run: the study's record; not modified.
        bench_jsons: files written by ``edgeshrink bench --json --out`` (single or compare).
        run_dir: the run folder, to hash artifacts that carry no ``notes["sha256"]``.
        device: the profile (or its name) the figures are for; a JSON whose machine is not
            that device (:func:`machine_mismatch`) leaves the latencies alone and is
            recorded in the candidate's ``notes["device_bench"]`` with its
            ``machine_mismatch`` (see :func:`mismatch_warnings`).

    Raises:
        UserError: a JSON is unreadable or matches no candidate.
    """
    profile = None
    if device is not None:
        from edgeshrink.devices import load_profile

        profile = load_profile(device)
    run = copy.deepcopy(run)
    cands = run.all_candidates()
    root = Path(run_dir) if run_dir is not None else None
    shas = {c.name: _candidate_sha(c, root) for c in cands}
    found: dict[str, list[dict[str, Any]]] = {}
    for path in map(Path, bench_jsons):
        hits = 0
        for meas in device_measurements(load_bench_json(path), source=path.name):
            why = machine_mismatch(meas["machine"], profile) if profile else None
            for cand in _match(meas, cands, shas):
                if why:
                    _record_mismatch(cand, meas, why)
                else:
                    found.setdefault(cand.name, []).append(meas)
                hits += 1
        if not hits:
            raise UserError(
                f"{path} measured no artifact of this run (matched by sha256 and by file "
                "name); bench the candidate's .onnx from the run folder."
            )
    for cand in cands:
        if cand.name in found:
            _apply(cand, found[cand.name])
    return run


def mismatch_warnings(run: RunRecord, device: str) -> list[str]:
    """One sentence per bench JSON set aside for ``device`` (see :func:`apply_device_bench`)."""
    by_source: dict[str, tuple[str, list[str]]] = {}
    for cand in run.all_candidates():
        for b in cand.notes.get("device_bench", []):
            why, names = by_source.setdefault(b["source"], (b["machine_mismatch"], []))
            names.append(cand.name)
    return [f"{source} is not used as {device}'s latency ({', '.join(names)}): {why}; measure "
            "on the device itself, or give --device the profile of the machine that measured "
            "it." for source, (why, names) in by_source.items()]


def device_latencies(run: RunRecord) -> dict[str, tuple[float, str]]:
    """``{candidate: (p50 ms, bench file)}`` for the candidates a device bench covered.

    The advisor takes this as ``measured``: those figures replace its estimates.
    """
    out = {}
    for cand in run.all_candidates():
        lat = cand.latency_ms or {}
        if lat.get("source") not in (None, "measured") and "p50" in lat:
            out[cand.name] = (float(lat["p50"]), str(lat["source"]))
    return out


def merge_device_benches(
    run: RunRecord, bench_jsons: list[Path | str], run_dir: Path | str, device=None
) -> tuple[RunRecord, dict[str, tuple[float, str]]]:
    """Apply device bench files to ``run``, save it in ``run_dir``, and return it with the
    ``{candidate: (p50 ms, bench file)}`` the advisor takes as ``measured``.

    With ``device``, a JSON measured on another machine is set aside with a warning on
    stderr (:func:`mismatch_warnings`) and recorded in the candidates' notes."""
    from edgeshrink.results import save_run

    run = apply_device_bench(run, bench_jsons, run_dir=run_dir, device=device)
    if device is not None:
        from edgeshrink.devices import load_profile

        for sentence in mismatch_warnings(run, load_profile(device).name):
            print(f"warning: {sentence}", file=sys.stderr)
    save_run(run, run_dir)
    return run, device_latencies(run)
