"""A synthetic but complete study for the report tests (also used by the browser test).

It has every family, a simulated candidate, a recommendation, a device profile, both
sensitivity maps, and a candidate and a layer named like markup, to prove names are escaped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeshrink.advisor import Constraints, recommend
from edgeshrink.devices import load_profile
from edgeshrink.measure.intervals import drop_interval, metric_interval
from edgeshrink.results import CandidateRecord, RunRecord, save_run

EVIL = "<script>alert(1)</script>"
RECOMMENDED = "prune-50+int8"
KIB = 1024
N = 1000  # evaluation samples


def _scores(acc: float) -> np.ndarray:
    """Per-sample results of an accuracy on N samples, nested (right ones first)."""
    s = np.zeros(N)
    s[: round(acc * N / 100)] = 100.0
    return s


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-+" else "_" for ch in name)


def _cand(name, family, acc, size_kib, stored_kib, p50, *, runtime="onnxruntime", recipe=(),
          precision="fp32", sparsity=0.0, encoded_kib=None):
    return CandidateRecord(
        name=name, recipe=list(recipe), family=family,
        metric={"name": "accuracy", "value": acc, "extras": {}, **metric_interval(_scores(acc)),
                **_drop(acc)},
        metric_drop=round(97.8 - acc, 4), size_bytes=int(size_kib * KIB),
        size_compressed_bytes=int(stored_kib * KIB),
        size_encoded_bytes=int(encoded_kib * KIB) if encoded_kib else None,
        latency_ms={"p50": p50, "p90": p50 * 1.2, "threads": 1, "batch": 1,
                    "source": "measured" if runtime != "simulated" else "simulated"},
        peak_memory_mb=40.0, params=61706, macs=416_000, activation_elems=15_000,
        sparsity=sparsity, runtime=runtime,
        artifact=f"artifacts/{_safe(name)}.onnx", precision=precision,
        sparsity_kind="unstructured" if sparsity else "none",
        notes={"packed_artifact": f"artifacts/{_safe(name)}.eskp"} if encoded_kib else {},
    )


def _drop(acc: float) -> dict:
    got = drop_interval(_scores(97.8), _scores(acc))
    return {"drop_ci95": got["drop_ci95"], "drop_p": got["drop_p"], "drop_test": got["test"]}


def sample_run() -> RunRecord:
    u = {"kind": "unstructured", "scope": "global"}
    q8 = {"kind": "static_int8", "calibrator": "minmax"}
    cands = [
        _cand("prune-50", "pruning", 97.7, 240, 150, 0.40, recipe=[{**u, "sparsity": 0.5}],
              sparsity=0.5, encoded_kib=130),
        _cand("prune-80", "pruning", 97.2, 240, 90, 0.40, recipe=[{**u, "sparsity": 0.8}],
              sparsity=0.8, encoded_kib=60),
        _cand("prune-95", "pruning", 88.0, 240, 40, 0.41, recipe=[{**u, "sparsity": 0.95}],
              sparsity=0.95, encoded_kib=18),
        _cand("channels-50", "pruning", 96.1, 62, 56, 0.16,
              recipe=[{"kind": "channels", "ratio": 0.5}]),
        _cand("int8-static", "quantization", 97.5, 64, 52, 0.18, recipe=[q8], precision="int8"),
        _cand("int2-ternary", "quantization", 91.0, 240, 16, 0.45, runtime="simulated",
              recipe=[{"kind": "ternary"}], precision="int2", encoded_kib=16),
        _cand(RECOMMENDED, "both", 97.3, 64, 30, 0.17, encoded_kib=30,
              recipe=[{**u, "sparsity": 0.5}, {"kind": "finetune", "epochs": 2}, q8],
              precision="int8", sparsity=0.5),
        _cand(EVIL, "both", 95.0, 40, 24, 0.15, recipe=[{"kind": "channels", "ratio": 0.7}, q8],
              precision="int8"),
    ]
    layers = ["conv1", "conv2", "fc1", EVIL, "0"]
    run = RunRecord(
        task="zoo:lenet5-digits",
        metric={"name": "accuracy", "unit": "%", "higher_is_better": True},
        baseline=_cand("baseline", "baseline", 97.8, 240, 222, 0.42),
        candidates=cands,
        pareto=[],  # recomputed by the report
        machine={"cpu": "2 vCPU AMD EPYC", "onnxruntime": "1.31", "threads": 1},
        created="2026-11-22T11:00:00",
        sensitivity={
            "sparsity": {"levels": [0.5, 0.7, 0.9],
                         "layers": {n: [97.7 - i, 97.0 - 2 * i, 90.0 - 5 * i]
                                    for i, n in enumerate(layers)}},
            "bits": {"levels": [8, 6, 4, 2],
                     "layers": {n: [97.8, 97.6 - i / 2, 95.0 - i, 60.0 + 5 * i]
                                for i, n in enumerate(layers)}},
        },
    )
    # the advisor's own recommendation (its figures are what the device view shows)
    run.device = load_profile("rpi4").summary()
    run.recommendation = recommend(run, "rpi4", Constraints(max_size_bytes=100_000, max_drop=1.5),
                                   "size")
    run.constraints = run.recommendation["constraints"]
    assert run.recommendation["candidate"] == RECOMMENDED, run.recommendation["candidate"]
    return run


def write_sample_run(run_dir: Path) -> RunRecord:
    """Save the sample study in ``run_dir`` with small fake artifact files."""
    run = sample_run()
    save_run(run, run_dir)
    for c in run.all_candidates():
        path = run_dir / c.artifact
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really onnx " * 8)
        packed = (c.notes or {}).get("packed_artifact")
        if packed:  # the study writes it beside the artifact
            (run_dir / packed).write_bytes(b"not really packed")
    return run
