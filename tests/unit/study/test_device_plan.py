"""``study --device D`` without ``--plan``: candidates in the device's runtimes and formats;
without ``--device`` the plans are what they were."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeshrink.devices import PROFILE_DIR, load_profile
from edgeshrink.study.plan import named_plan, resolve_plan
from edgeshrink.study.plans import device as device_module
from edgeshrink.study.plans.device import device_plan


class _Labelled:
    targets = np.zeros(8, dtype=np.int64)

    def __len__(self):
        return 8


LABELLED = SimpleNamespace(train=_Labelled())  # what the plan reads of a task: its train split


@pytest.fixture(autouse=True)
def _builders(monkeypatch):
    """Every target's builder registered (the plan skips a runtime whose builder is missing;
    this file tests which candidates the plan asks for, not the builders)."""
    from edgeshrink.targets import load_builders
    from edgeshrink.targets.configs import ExecuTorchConfig, LiteRTConfig, TensorRTQDQConfig
    from edgeshrink.transforms import HANDLERS

    load_builders()
    for cls in (LiteRTConfig, ExecuTorchConfig, TensorRTQDQConfig):
        if cls not in HANDLERS:
            monkeypatch.setitem(HANDLERS, cls, lambda *_: None)


def _plan(device, task=LABELLED, **kw):
    return {s.name: s for s in device_plan(task, load_profile(device), **kw)}


def _kinds(spec):
    return [c.kind for c in spec.recipe]


def test_cortex_m7_gets_only_full_integer_tflm_files_incl_structured_plus_int8():
    plan = _plan("cortex-m7")
    assert list(plan) == ["tflm-int8", "channels-30mac+tflm-int8", "channels-50mac+tflm-int8"]
    for spec in plan.values():
        last = spec.recipe[-1]
        assert (last.kind, last.precision, last.io, last.micro) == ("litert", "int8", "int8", True)
        assert not {"unstructured", "nm", "int8_static", "fp16"} & set(_kinds(spec))
    assert _kinds(plan["channels-50mac+tflm-int8"]) == ["structured", "finetune", "litert"]
    assert plan["channels-50mac+tflm-int8"].recipe[0].macs_reduction == 0.5
    assert plan["channels-50mac+tflm-int8"].recipe[1].distill == 0.5


def test_raspberry_pi_gets_litert_and_executorch_files_and_onnx_last():
    plan = _plan("raspberry-pi-4")
    assert list(plan)[:5] == ["litert-int8", "litert-fp32", "executorch-int8",
                              "executorch-fp32", "int8-static"]
    assert (plan["executorch-int8"].recipe[-1].kind, plan["executorch-int8"].recipe[-1].precision
            ) == ("executorch", "int8")
    lite = plan["litert-int8"].recipe[-1]
    assert (lite.precision, lite.io, lite.micro) == ("int8", "float", False)
    assert (lite.calibrator, lite.bias_correction) == ("percentile", True)  # see device.py
    # structured + INT8 in the preferred runtime's format (speed is the Pi's default priority)
    assert _kinds(plan["channels-30mac+litert-int8"]) == ["structured", "finetune", "litert"]
    assert plan["channels-50mac+litert-fp32"].recipe[-1].precision == "fp32"
    assert not any("unstructured" in _kinds(s) or "nm" in _kinds(s) for s in plan.values())


def test_x86_gets_onnx_runtime_u8s8_and_openvino(monkeypatch):
    # as where OpenVINO is installed (CI's venv has no OpenVINO: the next test skips it)
    real = device_module.runtime_missing
    monkeypatch.setattr(device_module, "runtime_missing",
                        lambda name: None if name == "openvino" else real(name))
    plan = _plan("x86-server-vnni")
    assert plan["int8-static"].recipe == plan["channels-50mac+int8-static"].recipe[-1:]
    assert plan["int8-static"].recipe[0].activations == "uint8"  # U8S8 on VNNI
    assert plan["openvino-int8"].recipe[-1].kind == "openvino_int8"
    assert {s.recipe[-1].kind for s in plan.values()} <= {"int8_static", "openvino_int8",
                                                          "finetune"}
    assert not any(s.recipe[-1].kind in ("litert", "executorch") for s in plan.values())


def test_a_runtime_missing_here_is_skipped_with_one_line(monkeypatch):
    real = device_module.runtime_missing
    monkeypatch.setattr(device_module, "runtime_missing", lambda name: (
        "OpenVINO is not installed here." if name == "openvino" else real(name)))
    notes = []
    plan = _plan("x86-server-vnni", on_note=notes.append)
    assert "openvino-int8" not in plan and "int8-static" in plan
    assert notes == ["openvino candidates skipped: OpenVINO is not installed here."]


def test_a_runtime_without_a_builder_is_skipped_with_one_line(monkeypatch):
    from edgeshrink.targets.configs import LiteRTConfig
    from edgeshrink.transforms import HANDLERS

    monkeypatch.delitem(HANDLERS, LiteRTConfig, raising=False)
    monkeypatch.setattr("edgeshrink.targets.load_builders", lambda: None)
    notes = []
    assert _plan("cortex-m7", on_note=notes.append) == {}
    assert notes == ["litert candidates skipped: this version has no builder for litert yet.",
                     "no runtime of cortex-m7 can build files here: the study measures the "
                     "ONNX baseline only."]
    assert "executorch-int8" in _plan("rpi4") and "litert-int8" not in _plan("rpi4")


def test_gpus_get_tensorrt_qdq_and_2_4_only_where_sparse_tensor_cores_exist():
    a100 = _plan("nvidia-a100")
    assert a100["tensorrt-int8-qdq"].recipe[-1].kind == "tensorrt_qdq"
    assert _kinds(a100["nm-2:4+tensorrt-int8-qdq"]) == ["nm", "finetune", "tensorrt_qdq"]
    # Maxwell: no int8 kernels, no 2:4: structured files in the ONNX trtexec --fp16 reads
    nano = _plan("jetson-nano")
    assert list(nano) == ["channels-30mac", "channels-50mac"]
    assert all(_kinds(s) == ["structured", "finetune"] for s in nano.values())


def test_structured_only_where_speed_or_size_can_bind():
    assert not any(n.startswith("channels") for n in _plan("rpi4", priority="accuracy"))
    with_limit = _plan("rpi4", priority="accuracy", limits=["latency"])
    assert "channels-50mac+litert-int8" in with_limit
    assert "channels-50mac+litert-int8" in _plan("rpi4", priority="energy")


def test_unstructured_only_for_storage_asked_for_on_a_device_that_unpacks_onnx():
    pi = _plan("rpi4", priority="size")  # weights loaded into RAM: the packed file is stored
    assert _kinds(pi["prune-80+int8-static"]) == ["unstructured", "finetune", "int8_static"]
    assert "prune-80+int8-static" not in _plan("rpi4")  # default priority: speed
    # an MCU runs its weights from flash: zeros there save nothing
    assert not any("unstructured" in _kinds(s) for s in _plan("cortex-m7", priority="size").values())


def test_without_labels_only_the_gentle_cut_and_no_finetune():
    plan = _plan("cortex-m7", task=SimpleNamespace(train=None))
    assert list(plan) == ["tflm-int8", "channels-30mac+tflm-int8"]
    assert _kinds(plan["channels-30mac+tflm-int8"]) == ["structured", "litert"]


def test_a_profile_without_runtimes_gets_onnx_runtime(tmp_path):
    text = (PROFILE_DIR / "raspberry-pi-4.yaml").read_text()
    old = tmp_path / "old.yaml"
    old.write_text(text[:text.index("runtimes:")] + text[text.index("ram_mb:"):])
    plan = _plan(str(old))
    assert list(plan) == ["int8-static", "channels-30mac+int8-static",
                          "channels-50mac+int8-static", "channels-50mac"]


def test_without_device_the_plans_are_unchanged():
    names = [s.name for s in resolve_plan(None, None)]
    assert names == ["prune-50", "prune-80", "prune-90", "int8-static",
                     "int8-static-percentile", "int8-dynamic", "fp16", "prune-80+int8-static"]
    pruning = [s.name for s in named_plan("pruning", None)]
    assert pruning == ["magnitude-90+ft+distill", "random-50", "magnitude-50-oneshot",
                       "wanda-50", "sparsegpt-50", "wanda-2:4", "iterative-90", "gradual-90",
                       "channels-30mac", "channels-50mac", "channels-50mac+int8-static"]
    # an explicit --plan wins over the device
    assert [s.name for s in resolve_plan("default", None, device="cortex-m7")] == names
    assert [s.name for s in resolve_plan(None, LABELLED, device="cortex-m7")][0] == "tflm-int8"


@pytest.mark.parametrize("device", ["cortex-m7", "rpi4", "x86-server-vnni", "nvidia-a100",
                                    "jetson-orin-nano", "android-npu", "raspberry-pi-5"])
def test_every_device_plan_has_unique_names_and_artifact_steps_last(device):
    from edgeshrink.config import check_artifact_last

    specs = device_plan(LABELLED, load_profile(device))
    assert len({s.name for s in specs}) == len(specs) >= 3
    for spec in specs:
        check_artifact_last(list(spec.recipe), spec.name)


def test_the_plan_asks_each_target_what_is_missing(monkeypatch):
    """No table of modules in the plan: a target's own missing() decides, in its words."""
    import importlib.util

    from edgeshrink.targets import get_target

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx_ir" else real(name, *a))
    why = get_target("tensorrt").missing()
    assert why == ("the TensorRT QDQ file needs onnx-ir here; install it with `pip install "
                   "onnx-ir` (TensorRT itself runs on the device).")
    assert device_module.runtime_missing("tensorrt") == why
    notes = []
    plan = _plan("jetson-orin-nano", on_note=notes.append)
    assert "tensorrt-int8-qdq" not in plan and "int8-static" in plan
    assert notes == [f"tensorrt candidates skipped: {why}"]
    monkeypatch.setattr(get_target("executorch"), "missing", lambda: "no ExecuTorch here.")
    assert device_module.runtime_missing("executorch") == "no ExecuTorch here."
    assert not hasattr(device_module, "_MODULES")


def test_both_plans_take_labelled_data_from_one_function(monkeypatch):
    """has_labels: 1-D targets in a non-empty train split; logits (distillation data), an
    empty split or no task are not labels. Both plans ask it, and drop fine-tuning with it."""
    from edgeshrink.data import Dataset
    from edgeshrink.study.plans.structured import structured_candidates
    from edgeshrink.task import has_labels

    x = np.zeros((4, 3), np.float32)
    assert has_labels(SimpleNamespace(train=Dataset((x,), np.zeros(4, np.int64))))
    assert not has_labels(SimpleNamespace(train=Dataset((x,), np.zeros((4, 10), np.float32))))
    assert not has_labels(SimpleNamespace(train=Dataset((x[:0],), np.zeros(0, np.int64))))
    assert not has_labels(SimpleNamespace(train=None)) and not has_labels(None)

    def kinds(specs):
        return {s.name: [c.kind for c in s.recipe] for s in specs}

    assert "finetune" in kinds(structured_candidates(LABELLED))["channels-30mac"]
    assert "finetune" in kinds(device_plan(LABELLED, load_profile("rpi4")))[
        "channels-30mac+litert-int8"]
    monkeypatch.setattr("edgeshrink.task.has_labels", lambda task: False)
    assert kinds(structured_candidates(LABELLED))["channels-30mac"] == ["structured"]
    device = kinds(device_plan(LABELLED, load_profile("rpi4")))
    assert device["channels-30mac+litert-int8"] == ["structured", "litert"]
    assert "channels-50mac+litert-int8" not in device  # no labels: only the gentler cut
