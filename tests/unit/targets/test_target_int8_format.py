"""The host is a device too: the INT8 weight format follows the CPU's flags (reduce_range
where x86 lacks VNNI and ORT's U8S8 pair sums saturate), measured both ways on LeNet-5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeshrink.config import config_from_dict, config_to_dict
from edgeshrink.errors import UserError
from edgeshrink.quant.ort import DynamicInt8Config, StaticInt8Config, int8_format_for
from edgeshrink.targets.onnxruntime import int8_format

AVX2_ONLY = ["sse4_2", "avx", "f16c", "fma", "avx2"]  # the AMD EPYC that saturated
VNNI = [*AVX2_ONLY, "avx512f", "avx512bw", "avx512_vnni"]


@pytest.mark.parametrize(("flags", "reduce"), [
    (AVX2_ONLY, True),
    ([*AVX2_ONLY, "avx512f", "avx512bw"], True),  # AVX-512 without VNNI: VPMADDUBSW too
    (VNNI, False),
    ([*AVX2_ONLY, "avx_vnni"], False),  # Alder Lake's AVX-VNNI
    (["neon", "asimd", "asimddp"], False),  # Arm dot products accumulate in int32
])
def test_chooser_follows_the_cpu_flags(flags, reduce):
    fmt = int8_format(flags)
    assert fmt["reduce_range"] is reduce
    assert fmt["activations"] == "uint8" and fmt["cpu_flags"] == flags
    assert fmt["reason"].endswith(".")
    assert ("reduce_range" in fmt["reason"]) is reduce


def test_recipe_pins_the_format_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(AVX2_ONLY))
    assert int8_format_for(StaticInt8Config())["reduce_range"] is True
    assert int8_format_for(StaticInt8Config())["chosen_by"] == "cpu flags"
    off = int8_format_for(StaticInt8Config(reduce_range="off"))
    assert off["reduce_range"] is False and off["chosen_by"] == "recipe"
    assert int8_format_for(DynamicInt8Config(reduce_range="on"))["reduce_range"] is True
    with pytest.raises(UserError, match="reduce_range"):
        StaticInt8Config(reduce_range="yes")
    cfg = StaticInt8Config(reduce_range="on")
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.fixture(scope="module")
def lenet():
    from edgeshrink.zoo import load

    return load("lenet5-digits")


def _int8_weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).astype(np.int32) for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.INT8}


def _build(task, cfg, tmp: Path, name: str, cpu_flags=None):
    from edgeshrink.transforms import TransformContext, apply_recipe

    ctx = TransformContext(task=task, workdir=tmp, name=name, cpu_flags=cpu_flags)
    return apply_recipe([cfg], ctx)


def test_static_int8_measured_both_ways(lenet, tmp_path, monkeypatch):
    """Both formats run in ORT and agree with FP32; 7-bit weights are the 8-bit ones halved."""
    from edgeshrink.measure.model_stats import torch_outputs
    from edgeshrink.targets import target_for

    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(AVX2_ONLY))
    reduced = _build(lenet, StaticInt8Config(), tmp_path, "auto-avx2")  # auto -> 7-bit
    full = _build(lenet, StaticInt8Config(reduce_range="off"), tmp_path, "off")
    assert reduced.notes["int8_format"]["reduce_range"] is True
    assert reduced.notes["int8_format"]["cpu_flags"] == AVX2_ONLY
    assert full.notes["int8_format"]["reduce_range"] is False

    ref = torch_outputs(lenet.model, lenet.eval)
    fp32 = lenet.metric(ref, lenet.eval.targets)
    for art in (reduced, full):
        out = target_for(art).outputs(art, lenet.eval)
        assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.98  # measured: 99.75 % / 100 %
        assert abs(lenet.metric(out, lenet.eval.targets) - fp32) <= 1.5

    w7, w8 = _int8_weights(reduced.path), _int8_weights(full.path)
    assert w7.keys() == w8.keys() and w7
    # ORT's 7-bit grid [-64, 64]: a u8 x s8 pair sums to at most 255*64*2 = 32,640 < 2**15
    assert max(int(np.abs(w).max()) for w in w7.values()) <= 64
    assert max(int(np.abs(w).max()) for w in w8.values()) == 127
    for name, w in w8.items():  # same per-channel scales, halved: one rounding step apart
        assert np.abs(w7[name] - np.round(w * 64 / 127)).max() <= 1, name


def test_dynamic_int8_follows_a_devices_flags(lenet, tmp_path, monkeypatch):
    """Flags given for the device (a profile's) decide, whatever this machine's are."""
    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: ["neon", "asimd"])
    reduced = _build(lenet, DynamicInt8Config(), tmp_path, "dyn-avx2", tuple(AVX2_ONLY))
    full = _build(lenet, DynamicInt8Config(), tmp_path, "dyn-vnni", tuple(VNNI))
    assert reduced.notes["int8_format"]["reduce_range"] is True
    assert full.notes["int8_format"]["reduce_range"] is False
    assert max(int(np.abs(w).max()) for w in _int8_weights(reduced.path).values()) <= 64
    assert max(int(np.abs(w).max()) for w in _int8_weights(full.path).values()) == 127


def _profile(tmp_path: Path, name: str, flags: list[str]):
    """A device profile read from YAML: the shipped Pi 4 with other ``cpu_flags``."""
    from edgeshrink.devices import PROFILE_DIR, load_profile

    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    lines = [f"cpu_flags: [{', '.join(flags)}]" if line.startswith("cpu_flags:") else
             f"name: {name}" if line.startswith("name:") else line
             for line in text.splitlines() if not line.startswith("aliases:")]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_profile(path)


def test_the_device_cpu_decides_and_says_so(lenet, tmp_path, monkeypatch):
    """study --device for an Arm Pi on an AVX2-only host: 8-bit weights (the Pi's int8 dot
    products do not saturate), decided by the device, with the caveat that this host's
    measurement saturates; for an AVX2-only device on a VNNI host: 7-bit, no caveat."""
    from edgeshrink.devices import load_profile
    from edgeshrink.study.plan import CandidateSpec
    from edgeshrink.study.runner import _build

    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(AVX2_ONLY))
    pi = load_profile("raspberry-pi-4")
    assert pi.cpu_flags == ("asimd",)
    art, _ = _build(CandidateSpec("pi", (StaticInt8Config(),)), lenet, tmp_path, None, pi)
    fmt = art.notes["int8_format"]
    assert fmt["reduce_range"] is False and fmt["cpu_flags"] == ["asimd"]
    assert fmt["decided_by"] == "device raspberry-pi-4"
    assert "saturate" in art.notes["accuracy_caveat"] and "lower" in art.notes["accuracy_caveat"]
    assert max(int(np.abs(w).max()) for w in _int8_weights(art.path).values()) == 127

    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(VNNI))
    epyc = _profile(tmp_path, "epyc-avx2", AVX2_ONLY)
    art, _ = _build(CandidateSpec("epyc", (DynamicInt8Config(),)), lenet, tmp_path, None, epyc)
    fmt = art.notes["int8_format"]
    assert fmt["reduce_range"] is True and fmt["decided_by"] == "device epyc-avx2"
    assert "accuracy_caveat" not in art.notes and "accuracy_caveat" not in fmt
    assert max(int(np.abs(w).max()) for w in _int8_weights(art.path).values()) <= 64


def test_without_a_device_or_its_flags_the_host_decides(lenet, tmp_path, monkeypatch):
    from edgeshrink.study.plan import CandidateSpec
    from edgeshrink.study.runner import _build

    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(AVX2_ONLY))
    art, _ = _build(CandidateSpec("host", (DynamicInt8Config(),)), lenet, tmp_path, None)
    assert art.notes["int8_format"]["decided_by"] == "this host"
    assert art.notes["int8_format"]["reduce_range"] is True
    blank = _profile(tmp_path, "no-flags", [])
    assert blank.cpu_flags == ()
    fmt = int8_format_for(StaticInt8Config(), None, device=blank.name)
    assert fmt["decided_by"] == "this host (the profile of no-flags lists no cpu_flags)"
    # 8-bit weights pinned for an AVX2 device, measured on a VNNI host: optimistic here
    monkeypatch.setattr("edgeshrink.bench.machine.cpu_flags", lambda: list(VNNI))
    off = int8_format_for(StaticInt8Config(reduce_range="off"), tuple(AVX2_ONLY), device="d")
    assert off["decided_by"] == "recipe" and "higher" in off["accuracy_caveat"]


def test_static_build_chooses_the_format_once(lenet, tmp_path, monkeypatch):
    import edgeshrink.quant.ort as ort_mod

    calls = []
    real = ort_mod.int8_format_for
    monkeypatch.setattr(ort_mod, "int8_format_for",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    art = _build(lenet, StaticInt8Config(), tmp_path, "once")
    assert len(calls) == 1 and art.notes["int8_format"]["decided_by"] == "this host"
