"""Roofline and energy estimates: exact arithmetic, and honesty about what a device runs."""

from __future__ import annotations

import dataclasses

import pytest

from edgeshrink.devices import load_profile
from edgeshrink.devices.estimate import Workload, estimate

W = Workload(name="m", macs=400_000_000, params=2_000_000, activation_elems=1_000_000, ops=50)


def test_roofline_matches_hand_computation():
    p = load_profile("rpi4")
    e = estimate(W, p)
    compute = 400e6 / (24e9 * 0.35 * 1.0)  # 4 threads of 4 cores
    memory = (2e6 * 4 + 2 * 1e6 * 4) / 4.5e9  # weights + activations written and read, DRAM
    overhead = (40 + 50 * 4) * 1e-6
    assert e.latency_ms == pytest.approx((max(compute, memory) + overhead) * 1e3)
    assert e.bound == "compute" and e.label == "estimate"
    joules = 400e6 * 20e-12 + 16e6 * 40e-12 + 2.7 * (max(compute, memory) + overhead)
    assert e.energy_mj == pytest.approx(joules * 1e3)


def test_unstructured_sparsity_buys_no_speed_without_sparse_kernels():
    sparse = dataclasses.replace(W, sparsity=0.9, sparsity_kind="unstructured")
    for name in ("rpi4", "x86-server-vnni", "nvidia-a100"):
        p = load_profile(name)
        assert estimate(sparse, p).latency_ms == estimate(W, p).latency_ms
        assert not estimate(sparse, p).accelerated
    p = dataclasses.replace(load_profile("rpi4"), accelerates={"unstructured": True, "int8": True})
    assert estimate(sparse, p).latency_ms < 0.5 * estimate(W, p).latency_ms


def test_nm_sparsity_only_where_2_4_is_accelerated():
    nm = dataclasses.replace(W, sparsity=0.5, sparsity_kind="n:m", precision="fp16")
    dense16 = dataclasses.replace(W, precision="fp16")
    gpu = load_profile("nvidia-a100")
    assert estimate(nm, gpu).effective_macs == W.macs / 2
    assert estimate(nm, gpu).parts_ms["compute"] == pytest.approx(
        estimate(dense16, gpu).parts_ms["compute"] / 2)
    cpu = load_profile("x86-server-vnni")
    assert estimate(nm, cpu).latency_ms == estimate(W, cpu).latency_ms  # fp16 and 2:4 absent


def test_precision_speeds_up_only_where_accelerated():
    int8 = dataclasses.replace(W, precision="int8")
    assert estimate(int8, load_profile("rpi4")).latency_ms < estimate(W, load_profile("rpi4")).latency_ms
    nano = load_profile("jetson-nano")  # no int8 kernels: expanded to fp32
    assert estimate(int8, nano).latency_ms == estimate(W, nano).latency_ms
    assert estimate(int8, nano).compute_dtype == "fp32"
    assert "not accelerated" in estimate(int8, nano).notes[0]


def test_memory_fit_on_a_microcontroller():
    mcu = load_profile("cortex-m7")
    tiny = Workload("t", macs=400_000, params=60_000, activation_elems=15_000, precision="int8",
                    file_bytes=65_000)
    e = estimate(tiny, mcu)
    assert e.fits_memory and e.ram_bytes == pytest.approx(15_000 + 0.03 * 2**20)  # weights in flash
    big = dataclasses.replace(tiny, file_bytes=3_000_000)
    assert not estimate(big, mcu).fits_storage
    wide = dataclasses.replace(tiny, activation_elems=200_000, precision="fp32")
    assert not estimate(wide, mcu).fits_ram


def test_ops_count_at_the_rate_of_the_precision_they_run_in():
    from types import SimpleNamespace

    from edgeshrink.devices.estimate import workload_from_candidate

    p = load_profile("rpi4")  # fp32 24 GMAC/s, int8 48 (profile), efficiency 0.35
    rec = SimpleNamespace(name="dyn", macs=400_000_000, params=2_000_000,
                          activation_elems=1_000_000, precision="int8", sparsity=0.0,
                          sparsity_kind="none", size_bytes=0, size_encoded_bytes=None,
                          notes={"onnx_nodes": 50,
                                 "macs_by_precision": {"fp32": 300, "int8": 100}})
    w = workload_from_candidate(rec)
    assert w.precision_split() == {"fp32": 0.75, "int8": 0.25}
    e = estimate(w, p)
    rate = 0.35 * 1e9
    compute = 300e6 / (p.peak_gmacs["fp32"] * rate) + 100e6 / (p.peak_gmacs["int8"] * rate)
    assert e.parts_ms["compute"] == pytest.approx(compute * 1e3)
    assert e.dtype_split == {"fp32": 0.75, "int8": 0.25} and not e.accelerated
    pj = p.energy["pj_per_mac"]
    mac_j = (300e6 * pj["fp32"] + 100e6 * pj.get("int8", pj["fp32"])) * 1e-12
    moved_j = e.bytes_moved * p.energy["pj_per_byte_dram"] * 1e-12
    static_j = p.energy["static_power_w"] * e.latency_ms * 1e-3
    assert e.energy_mj == pytest.approx((mac_j + moved_j + static_j) * 1e3)
    no_split = estimate(dataclasses.replace(w, macs_by_precision=None), p)
    assert no_split.parts_ms["compute"] == pytest.approx(400e6 / (p.peak_gmacs["int8"] * rate) * 1e3)
