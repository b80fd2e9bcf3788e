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


def test_profiles_name_the_runtimes_that_ship_on_them():
    def runtimes(name):
        return [(r.name, r.formats, r.micro) for r in load_profile(name).runtimes]

    assert runtimes("cortex-m7") == [("litert", ("int8",), True)]  # TFLM only, full int8
    assert [r[0] for r in runtimes("rpi4")] == ["litert", "executorch", "onnxruntime"]
    assert runtimes("x86-server-vnni") == [("onnxruntime", ("int8", "fp32"), False),
                                           ("openvino", ("int8",), False)]
    assert runtimes("jetson-orin-nano")[0] == ("tensorrt", ("int8", "fp16", "fp32"), False)
    assert "int8" not in runtimes("jetson-nano")[0][1]  # Maxwell: no int8 kernels
    assert runtimes("android-npu")[0][:2] == ("litert", ("int8", "fp16"))
    for p in list_profiles().values():
        if p.name in REQUIRED_DEVICES:
            assert p.runtimes and all(r.note for r in p.runtimes), p.name
    assert load_profile("cortex-m7").summary()["runtimes"][0]["micro"] is True
    def order(name):  # the device's preference order
        return [r.name for r in load_profile(name).shipped_runtimes()]

    assert order("rpi4") == ["litert", "executorch", "onnxruntime"]
    assert order("cortex-m7") == ["litert"]  # TFLM only


@pytest.mark.parametrize("block, message", [
    ("runtimes: [{name: coreml, formats: [int8]}]", "unknown runtime 'coreml'; known: onnxruntime"),
    ("runtimes: [{name: openvino, formats: [fp16]}]", "openvino formats must be some of fp32, int8"),
    ("runtimes: [{name: onnxruntime, micro: true, formats: [int8]}]", "micro is for litert"),
    ("runtimes: [{name: litert, formats: int8}]", "litert formats must be a list"),
    ("runtimes: [{name: litert, formats: [int8], speed: 2}]", "unknown key\\(s\\) speed"),
    ("runtimes: litert", "runtimes must be a list"),
    ("runtimes: [{name: litert, formats: [int8]}, {name: litert, formats: [fp32]}]",
     "litert is listed twice"),
])
def test_a_bad_runtimes_entry_is_one_sentence(tmp_path, block, message):
    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    start = text.index("runtimes:")
    end = text.index("ram_mb:")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text[:start] + block + "\n" + text[end:])
    with pytest.raises(UserError, match=message) as err:
        load_profile(bad)
    assert "\n" not in str(err.value)


def test_a_profile_without_runtimes_still_loads_and_ships_onnx(tmp_path):
    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    old = tmp_path / "old.yaml"
    old.write_text(text[:text.index("runtimes:")] + text[text.index("ram_mb:"):])
    p = load_profile(old)
    assert p.runtimes == ()
    assert [(r.name, r.formats) for r in p.shipped_runtimes()] == [("onnxruntime", ("int8", "fp32"))]


def test_devices_command_shows_runtimes():
    import json

    from edgeshrink.cli import app

    result = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert "litert (micro): int8" in result.output and "openvino: int8" in result.output
    result = CliRunner().invoke(app, ["devices", "--json"])
    devices = {d["name"]: d for d in json.loads(result.output)["devices"]}
    assert [r["name"] for r in devices["raspberry-pi-5"]["runtimes"]] == [
        "litert", "executorch", "onnxruntime"]
    assert devices["raspberry-pi-5"]["runtimes"][0]["formats"] == ["int8", "fp32", "fp16"]


def test_cpu_flags_are_known_names_and_every_cpu_runtime_device_lists_them(tmp_path):
    for p in list_profiles().values():  # ONNX Runtime's INT8 format is chosen from them
        if any(r.name == "onnxruntime" for r in p.shipped_runtimes()):
            assert p.cpu_flags, p.name
    assert load_profile("rpi5").cpu_flags == ("asimd", "asimdhp", "asimddp", "fphp")
    assert "avx512_vnni" in load_profile("x86-server-vnni").summary()["cpu_flags"]
    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    bad = tmp_path / "typo.yaml"
    bad.write_text(text.replace("cpu_flags: [asimd]", "cpu_flags: [avx2, avx512vnni]"))
    with pytest.raises(UserError, match=r"cpu_flags has unknown flag\(s\) avx512vnni"):
        load_profile(bad)
    bad.write_text(text.replace("cpu_flags: [asimd]", "cpu_flags: avx2"))
    with pytest.raises(UserError, match="cpu_flags must be a list"):
        load_profile(bad)
