"""A synthetic but complete study for the report tests (also used by the browser test).

It has every family, a simulated candidate, a recommendation, a device profile, both
sensitivity maps, and a candidate and a layer named like markup, to prove names are escaped.
"""

from __future__ import annotations

from pathlib import Path

from edgeshrink.results import CandidateRecord, RunRecord, save_run

EVIL = "<script>alert(1)</script>"
RECOMMENDED = "prune-50+int8"
KIB = 1024


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-+" else "_" for ch in name)


def _cand(name, family, acc, size_kib, stored_kib, p50, *, runtime="onnxruntime", recipe=(),
          precision="fp32", sparsity=0.0, encoded_kib=None):
    return CandidateRecord(
        name=name, recipe=list(recipe), family=family,
        metric={"name": "accuracy", "value": acc, "extras": {}},
        metric_drop=round(97.8 - acc, 4), size_bytes=int(size_kib * KIB),
        size_compressed_bytes=int(stored_kib * KIB),
        size_encoded_bytes=int(encoded_kib * KIB) if encoded_kib else None,
        latency_ms={"p50": p50, "p90": p50 * 1.2, "threads": 1, "batch": 1,
                    "source": "measured" if runtime != "simulated" else "simulated"},
        peak_memory_mb=40.0, params=61706, sparsity=sparsity, runtime=runtime,
        artifact=f"artifacts/{_safe(name)}.onnx", precision=precision,
        sparsity_kind="unstructured" if sparsity else "none",
    )


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
              recipe=[{"kind": "ternary"}], precision="int2"),
        _cand(RECOMMENDED, "both", 97.3, 64, 30, 0.17,
              recipe=[{**u, "sparsity": 0.5}, {"kind": "finetune", "epochs": 2}, q8],
              precision="int8", sparsity=0.5),
        _cand(EVIL, "both", 95.0, 40, 24, 0.15, recipe=[{"kind": "channels", "ratio": 0.7}, q8],
              precision="int8"),
    ]
    layers = ["conv1", "conv2", "fc1", EVIL, "0"]
    return RunRecord(
        task="zoo:lenet5-digits",
        metric={"name": "accuracy", "unit": "%", "higher_is_better": True},
        baseline=_cand("baseline", "baseline", 97.8, 240, 222, 0.42),
        candidates=cands,
        pareto=[],  # recomputed by the report
        machine={"cpu": "2 vCPU AMD EPYC", "onnxruntime": "1.31", "threads": 1},
        created="2026-11-22T11:00:00",
        device={"name": "rpi4", "description": "Raspberry Pi 4 (Cortex-A72, 4 GB)",
                "memory_mb": 4096, "int8": True, "fp16": False, "peak_gops": 24.0},
        constraints={"max_size": "100KB", "max_latency_ms": 5.0, "max_drop": 1.0},
        recommendation={
            "candidate": RECOMMENDED, "device": "rpi4", "priority": "size",
            "constraints": {"max_drop": 1.0}, "binding": ["max_drop"],
            "reasons": ["It is the smallest candidate within 1.0 point of the baseline.",
                        "INT8 kernels exist on the Cortex-A72, so it is also 2.4x faster."],
            "alternatives": [{"name": EVIL, "why_not": "It loses 2.8 points (limit 1.0)."},
                             {"name": "int8-static", "why_not": "It is 1.7x larger."}],
            "estimates": {
                RECOMMENDED: {"latency_ms": 1.2, "energy_mj": 3.4, "fits_memory": True,
                              "accelerated": True, "latency_source": "roofline"},
                EVIL: {"latency_ms": 1.1, "energy_mj": 3.0, "fits_memory": True,
                       "accelerated": True, "latency_source": "roofline"},
            },
        },
        sensitivity={
            "sparsity": {"levels": [0.5, 0.7, 0.9],
                         "layers": {n: [97.7 - i, 97.0 - 2 * i, 90.0 - 5 * i]
                                    for i, n in enumerate(layers)}},
            "bits": {"levels": [8, 6, 4, 2],
                     "layers": {n: [97.8, 97.6 - i / 2, 95.0 - i, 60.0 + 5 * i]
                                for i, n in enumerate(layers)}},
        },
    )


def write_sample_run(run_dir: Path) -> RunRecord:
    """Save the sample study in ``run_dir`` with small fake artifact files."""
    run = sample_run()
    save_run(run, run_dir)
    for c in run.all_candidates():
        path = run_dir / c.artifact
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really onnx " * 8)
    return run
