"""Put latencies measured on the real device into a study's results (host side only).

The user runs ``edgeshrink bench CANDIDATE.onnx --json --out pi4.json`` on the device,
copies the JSON back, and :func:`apply_device_bench` replaces the local latencies of the
candidates whose artifact it measured. A bench JSON is matched to a candidate by the
artifact's sha256 (recorded in the JSON), else by a file name that is unique in the run.

Example:
    >>> run = apply_device_bench(load_run("runs/demo"), [Path("pi4.json")],
    ...                          run_dir="runs/demo")  # doctest: +SKIP
    >>> run.get("int8-static").latency_ms["source"]  # doctest: +SKIP
    'pi4.json'
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from edgeshrink.bench.runner import COMPARE_SCHEMA, SCHEMA
from edgeshrink.bench.session import sha256_file
from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord

__all__ = [
    "apply_device_bench", "load_bench_json", "device_measurements", "device_latencies",
    "merge_device_benches",
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
            "peak_rss_mb": m.get("peak_rss_mb"),
        })  # fmt: skip
    return out


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


def apply_device_bench(
    run: RunRecord, bench_jsons: list[Path | str], *, run_dir: Path | str | None = None
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

    Raises:
        UserError: a JSON is unreadable or matches no candidate.
    """
    run = copy.deepcopy(run)
    cands = run.all_candidates()
    root = Path(run_dir) if run_dir is not None else None
    shas = {c.name: _candidate_sha(c, root) for c in cands}
    found: dict[str, list[dict[str, Any]]] = {}
    for path in map(Path, bench_jsons):
        hits = 0
        for meas in device_measurements(load_bench_json(path), source=path.name):
            for cand in _match(meas, cands, shas):
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
    run: RunRecord, bench_jsons: list[Path | str], run_dir: Path | str
) -> tuple[RunRecord, dict[str, tuple[float, str]]]:
    """Apply device bench files to ``run``, save it in ``run_dir``, and return it with the
    ``{candidate: (p50 ms, bench file)}`` the advisor takes as ``measured``."""
    from edgeshrink.results import save_run

    run = apply_device_bench(run, bench_jsons, run_dir=run_dir)
    save_run(run, run_dir)
    return run, device_latencies(run)
