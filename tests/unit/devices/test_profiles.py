"""Device profiles: every shipped one loads, names resolve, user files are found."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgeshrink.devices import ACCELERATION_KEYS, PROFILE_DIR, list_profiles, load_profile
from edgeshrink.errors import UserError

REQUIRED_DEVICES = ("raspberry-pi-4", "raspberry-pi-5", "jetson-nano", "jetson-orin-nano",
                    "android-npu", "cortex-m7", "x86-server-vnni", "nvidia-a100", "x86-xeon-2vcpu")


def test_every_required_device_ships_with_sources_and_all_acceleration_flags():
    profiles = list_profiles()
    assert set(REQUIRED_DEVICES) <= set(profiles)
    for name in REQUIRED_DEVICES:
        p = profiles[name]
        assert set(ACCELERATION_KEYS) <= set(p.accelerates), name
        assert p.sources and all(len(s) > 20 for s in p.sources), name
        assert {"pj_per_mac", "pj_per_byte_dram", "static_power_w"} <= set(p.energy), name
        assert p.peak_gmacs["fp32"] > 0 and p.memory_bandwidth_gbs > 0 and p.ram_mb > 0
        # an accelerated precision is never slower than fp32 at peak
        for dtype in ("fp16", "int8"):
            if p.supports(dtype):
                assert p.peak_gmacs.get(dtype, 0) >= p.peak_gmacs["fp32"], (name, dtype)


def test_the_seeds_hardware_facts_are_in_the_profiles():
    assert load_profile("nvidia-a100").supports("2:4")
    assert not load_profile("x86-server-vnni").supports("unstructured")
    assert load_profile("x86-server-vnni").supports("int8")
    assert not load_profile("jetson-nano").supports("int8")  # Maxwell: no dp4a
    assert load_profile("cortex-m7").weights_in == "storage"
    assert load_profile("this-host").study_host


def test_aliases_and_paths_resolve():
    assert load_profile("rpi4").name == "raspberry-pi-4"
    assert load_profile(PROFILE_DIR / "cortex-m7.yaml").name == "cortex-m7"


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown device 'toaster'.*raspberry-pi-4"):
        load_profile("toaster")


def test_user_profile_folder_and_bad_files(tmp_path, monkeypatch):
    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(text.replace("name: raspberry-pi-4", "name: my-board")
                                        .replace("aliases: [rpi4]", "aliases: [mb]"))
    monkeypatch.setenv("EDGESHRINK_DEVICES", str(tmp_path))
    assert load_profile("mb").name == "my-board"
    assert "my-board" in list_profiles()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("memory_bandwidth_gbs: 4.5", "memory_bandwidth_gbs: -1"))
    with pytest.raises(UserError, match="memory_bandwidth_gbs must be a positive number"):
        load_profile(bad)
    bad.write_text("name: x\n")
    with pytest.raises(UserError, match="lacks description"):
        load_profile(bad)


def test_devices_command_lists_profiles():
    from edgeshrink.cli import app

    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in REQUIRED_DEVICES:
        assert name in result.output
