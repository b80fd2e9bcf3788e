"""Device bench JSONs replace the local latencies of the candidates they measured."""

from __future__ import annotations

import json
import shutil

import pytest
from bench_onnx_models import make_mlp

from edgeshrink.bench import BenchOptions, bench_model, compare
from edgeshrink.bench.merge import apply_device_bench
from edgeshrink.errors import UserError
from edgeshrink.results import CandidateRecord, RunRecord


def _cand(name: str, artifact: str, p50: float) -> CandidateRecord:
    return CandidateRecord(
        name=name, recipe=[], family="quantization", metric={"name": "acc", "value": 90.0},
        metric_drop=0.0, size_bytes=1, size_compressed_bytes=1,
        latency_ms={"p50": p50, "p90": p50, "threads": 1, "batch": 1, "source": "measured"},
        peak_memory_mb=1.0, params=1, sparsity=0.0, runtime="onnxruntime", artifact=artifact,
    )  # fmt: skip


@pytest.fixture
def run_dir(tmp_path):
    root = tmp_path / "run"
    (root / "artifacts").mkdir(parents=True)
    make_mlp(root / "artifacts" / "base.onnx", seed=0)
    make_mlp(root / "artifacts" / "int8.onnx", seed=1)
    make_mlp(root / "artifacts" / "other.onnx", seed=2)
    run = RunRecord(task="t", metric={"name": "acc"},
                    baseline=_cand("baseline", "artifacts/base.onnx", 111.0),
                    candidates=[_cand("int8", "artifacts/int8.onnx", 222.0),
                                _cand("other", "artifacts/other.onnx", 333.0)])  # fmt: skip
    return root, run


def _write(path, report) -> object:
    path.write_text(json.dumps(report))
    return path


def test_sha_match_replaces_latency_and_keeps_local(run_dir, tmp_path):
    root, run = run_dir
    # The device got a renamed copy: the sha256 still identifies it.
    shutil.copy(root / "artifacts/int8.onnx", tmp_path / "renamed.onnx")
    rep = bench_model(tmp_path / "renamed.onnx", BenchOptions(runs=7, threads=1))
    out = apply_device_bench(run, [_write(tmp_path / "pi4.json", rep)], run_dir=root)
    lat = out.get("int8").latency_ms
    assert lat["p50"] == rep["latency_ms"]["p50"] and lat["source"] == "pi4.json"
    assert lat["local"]["p50"] == 222.0 and lat["by_threads"]["1"]["p50"] == lat["p50"]
    assert lat["device"]["cpu_count"] == rep["machine"]["cpu_count"]
    assert out.get("baseline").latency_ms["p50"] == 111.0  # unmatched: untouched
    assert run.get("int8").latency_ms["p50"] == 222.0  # the input is not modified


def test_name_fallback_and_compare_json(run_dir, tmp_path):
    root, run = run_dir
    a, b = root / "artifacts/base.onnx", root / "artifacts/other.onnx"
    rep = compare([a, b], BenchOptions(runs=5, threads=1))
    rep["models"][1]["model"]["sha256"] = "0" * 64  # e.g. re-saved on the device
    out = apply_device_bench(run, [_write(tmp_path / "cmp.json", rep)], run_dir=root)
    assert out.get("baseline").latency_ms["p50"] == rep["models"][0]["latency_ms"]["p50"]
    assert out.get("other").latency_ms["p50"] == rep["models"][1]["latency_ms"]["p50"]
    assert out.get("int8").latency_ms["source"] == "measured"


def test_several_thread_counts_fill_by_threads(run_dir, tmp_path):
    root, run = run_dir
    model = root / "artifacts/int8.onnx"
    files = [
        _write(tmp_path / f"t{t}.json", bench_model(model, BenchOptions(runs=3, threads=t)))
        for t in (2, 1)
    ]
    lat = apply_device_bench(run, files, run_dir=root).get("int8").latency_ms
    assert sorted(lat["by_threads"]) == ["1", "2"]
    assert lat["threads"] == 1 and lat["source"] == "t1.json"  # the local thread count wins


def test_unmatched_or_bad_json_is_a_user_error(run_dir, tmp_path):
    root, run = run_dir
    stranger = make_mlp(tmp_path / "stranger.onnx", seed=9)
    rep = bench_model(stranger, BenchOptions(runs=2))
    with pytest.raises(UserError, match="measured no artifact of this run"):
        apply_device_bench(run, [_write(tmp_path / "s.json", rep)], run_dir=root)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="is not JSON"):
        apply_device_bench(run, [tmp_path / "junk.json"])
    with pytest.raises(UserError, match="not an edgeshrink bench report"):
        apply_device_bench(run, [_write(tmp_path / "x.json", {"a": 1})])


# ------------------------------------------------------------ the JSON's machine vs the device

PI4 = {"machine": "aarch64", "cpu_model": "BCM2835", "cpu_core_types": ["Cortex-A72"],
       "cpu_count": 4, "cpu_flags": ["asimd"]}
PI5 = {**PI4, "cpu_core_types": ["Cortex-A76"], "cpu_flags": ["asimd", "asimddp"]}
AVX2_LAPTOP = {"machine": "x86_64", "cpu_model": "AMD Ryzen 5 3600", "cpu_count": 12,
               "cpu_flags": ["avx", "fma", "avx2"]}
XEON_8380 = {"machine": "x86_64", "cpu_model": "Intel(R) Xeon(R) Platinum 8380", "cpu_count": 80,
             "cpu_flags": ["avx2", "avx512f", "avx512_vnni"]}


@pytest.mark.parametrize("machine,device,expect", [
    (PI4, "rpi4", None),
    (PI5, "rpi4", "measured on Cortex-A76 cores; raspberry-pi-4 has Cortex-A72"),
    (PI4, "rpi5", "measured on Cortex-A72 cores; raspberry-pi-5 has Cortex-A76"),
    ({**PI4, "cpu_count": 64, "cpu_core_types": []}, "rpi4",
     "its machine had 64 cores; raspberry-pi-4 has 4"),
    (AVX2_LAPTOP, "rpi4", "measured on an x86_64 CPU; raspberry-pi-4 is aarch64"),
    (PI4, "x86-server-vnni", "measured on an aarch64 CPU; x86-server-vnni is x86_64"),
    (AVX2_LAPTOP, "x86-server-vnni", "has no VNNI"),
    (XEON_8380, "x86-server-vnni", None),
    ({**XEON_8380, "cpu_count": 2}, "x86-server-vnni", "had 2 core(s); x86-server-vnni runs 8"),
    (PI4, "cortex-m7", "cortex-m7 is a microcontroller, which cannot run edgeshrink bench"),
    ({}, "rpi4", None),  # an old JSON without machine facts is taken at its word
    ({"machine": "aarch64", "cpu_core_types": ["Cortex-A57"], "cpu_count": 4}, "jetson-nano",
     None),
    ({"machine": "aarch64", "cpu_core_types": ["Cortex-X3", "Cortex-A715", "Cortex-A510"],
      "cpu_count": 8}, "android-npu", None),
])  # fmt: skip
def test_machine_mismatch_against_profiles(machine, device, expect):
    from edgeshrink.bench.merge import machine_mismatch
    from edgeshrink.devices import load_profile

    why = machine_mismatch(machine, load_profile(device))
    if expect is None:
        assert why is None
    else:
        assert why is not None and expect in why


def test_a_json_from_another_machine_is_flagged_and_not_used(run_dir, tmp_path, capsys):
    from edgeshrink.bench.merge import device_latencies, merge_device_benches

    root, run = run_dir
    rep = bench_model(root / "artifacts/int8.onnx", BenchOptions(runs=3, threads=1))
    here = _write(tmp_path / "here.json", rep)  # measured on this (x86_64) machine
    out, measured = merge_device_benches(run, [here], root, device="rpi4")
    assert measured == {}  # the advisor keeps its Pi 4 estimate
    int8 = out.get("int8")
    assert int8.latency_ms["p50"] == 222.0 and int8.latency_ms["source"] == "measured"
    (flag,) = int8.notes["device_bench"]
    assert flag["source"] == "here.json" and flag["p50"] == rep["latency_ms"]["p50"]
    assert "x86_64" in flag["machine_mismatch"] and "raspberry-pi-4" in flag["machine_mismatch"]
    err = capsys.readouterr().err
    assert err.startswith("warning: here.json is not used as raspberry-pi-4's latency (int8):")
    assert err.count("\n") == 1
    from edgeshrink.results import load_run

    assert load_run(root).get("int8").notes["device_bench"][0]["machine_mismatch"]  # saved
    # the same JSON, said to be from a Pi 4 (the machine it was given for), is used
    rep["machine"] = PI4
    pi = _write(tmp_path / "pi.json", rep)
    out, measured = merge_device_benches(run, [pi], root, device="rpi4")
    assert measured["int8"] == (rep["latency_ms"]["p50"], "pi.json")
    assert "device_bench" not in out.get("int8").notes and capsys.readouterr().err == ""
    assert device_latencies(out) == measured
