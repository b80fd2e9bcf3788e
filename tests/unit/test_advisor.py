"""The advisor on synthetic but realistic studies: different devices, different advice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeshrink.advisor import (
    Constraints,
    advise_run,
    parse_latency,
    parse_size,
    recommend,
)
from edgeshrink.devices import list_profiles
from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord, load_run, save_run

INTEGER = ("int8", "int4", "int2")


def cand(name, *, drop, params, macs, precision="fp32", kind="none", sparsity=0.0,
         act=15_000, ops=12, runtime="onnxruntime", encoded=None, p50=0.1):
    width = {"fp32": 4, "fp16": 2, "int8": 1, "int4": 0.5}[precision]
    size = int(params * width) + 2_000
    family = "baseline" if name == "baseline" else "pruning"
    return CandidateRecord(
        name=name, recipe=[], family=family, metric={"name": "accuracy", "value": 99 - drop},
        metric_drop=drop, size_bytes=size, size_compressed_bytes=size, size_encoded_bytes=encoded,
        latency_ms={"p50": p50, "p90": p50, "threads": 1, "source": "measured"},
        peak_memory_mb=50.0, params=params, macs=macs, activation_elems=act, sparsity=sparsity,
        sparsity_kind=kind, precision=precision, runtime=runtime, artifact=f"{name}.onnx",
        notes={"onnx_nodes": ops})


def study(params, macs, act, ops, drops=None):
    """baseline, unstructured 90 %, 2:4 fp16, structured 50 %, int8, int4, structured+int8."""
    d = {"unstructured-90": 0.5, "nm-2of4-fp16": 0.4, "structured-50": 0.9, "int8": 0.6,
         "int4": 0.9, "structured-50-int8": 1.0, **(drops or {})}
    small, smacs = params // 4, macs // 4
    c = [
        cand("unstructured-90", drop=d["unstructured-90"], params=params, macs=macs,
             kind="unstructured", sparsity=0.9, act=act, ops=ops, encoded=int(params * 0.1 * 6)),
        cand("nm-2of4-fp16", drop=d["nm-2of4-fp16"], params=params, macs=macs, precision="fp16",
             kind="n:m", sparsity=0.5, act=act, ops=ops),
        cand("structured-50", drop=d["structured-50"], params=small, macs=smacs,
             kind="structured", sparsity=0.5, act=act // 2, ops=ops),
        cand("int8", drop=d["int8"], params=params, macs=macs, precision="int8", act=act,
             ops=ops * 3),
        cand("int4", drop=d["int4"], params=params, macs=macs, precision="int4", act=act,
             ops=ops, runtime="simulated"),
        cand("structured-50-int8", drop=d["structured-50-int8"], params=small, macs=smacs,
             precision="int8", kind="structured", sparsity=0.5, act=act // 2, ops=ops * 3),
    ]
    base = cand("baseline", drop=0.0, params=params, macs=macs, act=act, ops=ops)
    return RunRecord(task="synthetic", metric={"name": "accuracy"}, baseline=base, candidates=c)


LENET = dict(params=61_706, macs=416_000, act=15_000, ops=12)  # LeNet-5 on MNIST
RESNET50 = dict(params=25_557_032, macs=4_100_000_000, act=11_000_000, ops=120)


def test_parse_units():
    assert parse_size("200KB") == 200_000 and parse_size("1.5MiB") == 1_572_864
    assert parse_latency("5ms") == 5.0 and parse_latency("250us") == 0.25
    with pytest.raises(UserError, match="not a size"):
        parse_size("lots")


def test_microcontroller_gets_smallest_integer_candidate_that_fits():
    run = study(**LENET)
    rec = recommend(run, "cortex-m7", Constraints(max_drop=1.0))
    assert rec["priority"] == "size"  # the MCU profile's default: memory limits favour size
    est = rec["estimates"]
    ok = [c for c in run.all_candidates()
          if c.precision in INTEGER and c.metric_drop <= 1.0 and est[c.name]["fits_memory"]]
    smallest = min(ok, key=lambda c: est[c.name]["size_bytes"])
    assert rec["candidate"] == smallest.name == "structured-50-int8"
    assert run.get(rec["candidate"]).precision in INTEGER
    # with a tighter accuracy budget the smallest integer one left is the int4 candidate
    rec = recommend(run, "cortex-m7", Constraints(max_drop=0.95))
    assert rec["candidate"] == "int4"
    assert "max_drop" in rec["binding"]


def test_gpu_with_sparse_tensor_cores_picks_nm_for_speed_and_cpu_does_not():
    run = study(**RESNET50)
    cons = Constraints(max_drop=0.5)
    gpu = recommend(run, "nvidia-a100", cons, "speed")
    assert gpu["candidate"] == "nm-2of4-fp16"
    assert gpu["estimates"]["nm-2of4-fp16"]["accelerated"] is True
    cpu = recommend(run, "x86-server-vnni", cons, "speed")
    assert cpu["candidate"] != "nm-2of4-fp16"
    assert cpu["estimates"]["nm-2of4-fp16"]["accelerated"] is False
    # same study, looser drop: the CPU with VNNI takes the int8 candidate, the GPU still not fp32
    cpu = recommend(run, "x86-server-vnni", Constraints(max_drop=1.0), "speed")
    assert cpu["candidate"] in ("structured-50-int8", "int8")


def test_cpu_without_sparse_kernels_never_picks_unstructured_for_speed():
    plain = [p for p in list_profiles().values() if not p.supports("unstructured")]
    assert len(plain) >= 8
    for sizes in (LENET, RESNET50):
        # even when unstructured is the most accurate compressed candidate
        run = study(**sizes, drops={"unstructured-90": 0.01})
        for profile in plain:
            for cons in (Constraints(max_drop=1.0), Constraints(max_drop=0.3),
                         Constraints(max_drop=None)):
                try:
                    rec = recommend(run, profile, cons, "speed")
                except UserError:
                    continue
                assert rec["candidate"] != "unstructured-90", (profile.name, cons)


def test_profile_with_sparse_kernels_can_pick_unstructured(tmp_path, monkeypatch):
    source = Path(list_profiles()["raspberry-pi-4"].path)
    yaml_text = source.read_text().replace("name: raspberry-pi-4", "name: pi4-sparse")
    yaml_text = yaml_text.replace("aliases: [rpi4]", "aliases: []")
    yaml_text = yaml_text.replace("unstructured: false", "unstructured: true")
    (tmp_path / "pi4-sparse.yaml").write_text(yaml_text)
    monkeypatch.setenv("EDGESHRINK_DEVICES", str(tmp_path))
    run = study(**RESNET50, drops={"unstructured-90": 0.01})
    rec = recommend(run, "pi4-sparse", Constraints(max_drop=0.3), "speed")
    assert rec["candidate"] == "unstructured-90"
    plain = recommend(run, "rpi4", Constraints(max_drop=0.3), "speed")
    assert plain["candidate"] != "unstructured-90"


def test_too_tight_constraints_name_binding_constraint_and_nearest():
    run = study(**LENET)
    with pytest.raises(UserError, match=r"max_size cannot be met.*nearest on size: "
                                        r"structured-50-int8: size 17.4 kB > 1.0 kB"):
        recommend(run, "rpi4", Constraints(max_size_bytes=1_000, max_drop=1.0), "size")
    with pytest.raises(UserError, match=r"max_latency cannot be met"):
        recommend(run, "rpi4", Constraints(max_latency_ms=0.001), "speed")


def test_candidate_too_big_for_memory_is_never_picked():
    # 150 k activations: 600 KB in fp32 overflow the 512 KB arena, 150 KB in int8 fit
    run = study(params=61_706, macs=20_000_000, act=150_000, ops=12)
    rec = recommend(run, "cortex-m7", Constraints(max_drop=None), "accuracy")
    est = rec["estimates"]
    assert est["baseline"]["fits_memory"] is False
    assert est[rec["candidate"]]["fits_memory"] is True
    assert rec["candidate"] == "int8" and "memory" in rec["binding"]
    why = {a["name"]: a["why_not"] for a in rec["alternatives"]}
    assert why["baseline"].startswith("does not fit")
    with pytest.raises(UserError, match="no candidate fits in the memory of cortex-m7"):
        recommend(study(**RESNET50), "cortex-m7", Constraints(max_drop=None), "size")


def test_same_study_different_devices_different_advice():
    run = study(**LENET)
    picks = {d: recommend(run, d, Constraints(max_drop=1.0))["candidate"]
             for d in ("cortex-m7", "x86-xeon-2vcpu", "android-npu")}
    assert picks["cortex-m7"] == "structured-50-int8"
    assert len(set(picks.values())) >= 2, picks


def test_measured_latency_replaces_estimate():
    run = study(**LENET)
    rec = recommend(run, "rpi4", Constraints(max_drop=1.0), "speed",
                    measured={"int8": (0.002, "bench-rpi4.json")})
    assert rec["estimates"]["int8"]["latency_source"] == "bench-rpi4.json"
    assert rec["estimates"]["int8"]["latency_ms"] == 0.002
    assert rec["estimates"]["baseline"]["latency_source"] == "estimate"
    assert rec["candidate"] == "int8"
    host = recommend(run, "this-host", Constraints(max_drop=1.0), "speed")
    assert host["estimates"]["baseline"]["latency_source"] == "measured"
    assert host["estimates"]["int4"]["latency_source"] == "estimate"  # simulated: not measured


def test_advise_run_writes_recommendation_and_copies_artifact(tmp_path):
    run = study(**LENET)
    for c in run.all_candidates():
        (tmp_path / c.artifact).write_bytes(c.name.encode())
    save_run(run, tmp_path)
    rec = advise_run(tmp_path, "cortex-m7", Constraints(max_drop=1.0))
    stored = load_run(tmp_path)
    assert stored.recommendation == json.loads(json.dumps(rec))
    assert stored.device["name"] == "cortex-m7"
    out = tmp_path / "recommended"
    assert (out / "structured-50-int8.onnx").read_bytes() == b"structured-50-int8"
    readme = (out / "README.md").read_text()
    assert "cortex-m7" in readme and "edgeshrink bench" in readme
    advise_run(tmp_path, "rpi4", Constraints(max_drop=1.0), "speed")  # replaces the folder
    assert len(list(out.iterdir())) == 2


def test_recommend_command_explains_and_exits_3_when_nothing_qualifies(tmp_path):
    from edgeshrink.cli import main

    run = study(**LENET)
    for c in run.all_candidates():
        (tmp_path / c.artifact).write_bytes(c.name.encode())  # distinct files, distinct sha256
    save_run(run, tmp_path)
    from edgeshrink.bench.runner import SCHEMA
    from edgeshrink.bench.session import sha256_file

    int8 = run.get("int8")
    bench = tmp_path / "bench.json"  # what `edgeshrink bench --json` writes, trimmed
    bench.write_text(json.dumps({
        "schema": SCHEMA, "options": {"threads": 4}, "machine": {},
        "model": {"sha256": sha256_file(tmp_path / int8.artifact), "name": "int8.onnx"},
        "latency_ms": {q: 0.001 for q in ("p50", "p90", "p99", "mean", "min", "max")},
    }))
    main(["recommend", str(tmp_path), "--device", "rpi4", "--priority", "speed",
          "--bench-json", str(bench)])
    stored = load_run(tmp_path).recommendation
    assert stored["candidate"] == "int8"
    assert stored["estimates"]["int8"]["latency_source"] == "bench.json"
    with pytest.raises(SystemExit) as exc:
        main(["recommend", str(tmp_path), "--device", "rpi4", "--max-size", "1KB"])
    assert exc.value.code == 3  # no candidate meets the budget (issue #16)
