"""recommended/ holds the runtime's own files and its own loading code, never an ONNX
Runtime snippet for a device whose runtime is not ONNX Runtime."""

from __future__ import annotations

import pytest

from edgeshrink.errors import UserError
from edgeshrink.recommended import copy_recommended, shipped_files
from edgeshrink.results import CandidateRecord, RunRecord, save_run

HEADER = "alignas(16) const unsigned char lenet_int8_model[] = {0x1c, 0x00};\nunsigned int n = 2;\n"


def _cand(name, artifact, runtime, notes=None, precision="int8"):
    return CandidateRecord(
        name=name, recipe=[], family="quantization" if name != "baseline" else "baseline",
        metric={"name": "accuracy", "value": 97.0, "extras": {}}, metric_drop=0.5,
        size_bytes=50_000, size_compressed_bytes=40_000, size_encoded_bytes=None,
        latency_ms={"p50": 0.2, "threads": 1, "batch": 1, "source": "measured"},
        peak_memory_mb=None, params=11_000, macs=91_776, activation_elems=3_000,
        sparsity=0.0, sparsity_kind="none", precision=precision, runtime=runtime,
        artifact=artifact, notes=dict(notes or {}))


def _run(tmp_path, cand, files):
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    base = _cand("baseline", "artifacts/baseline.onnx", "onnxruntime", precision="fp32")
    (tmp_path / base.artifact).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / base.artifact).write_bytes(b"base")
    run = RunRecord(task="zoo:lenet5-digits", metric={"name": "accuracy", "unit": "%",
                                                      "higher_is_better": True},
                    baseline=base, candidates=[cand])
    save_run(run, tmp_path)
    rec = {"candidate": cand.name, "device": "cortex-m7", "priority": "size",
           "reasons": [f"{cand.name} is the smallest file that fits."]}
    return copy_recommended(tmp_path, run, rec)


def test_litert_micro_folder_has_tflite_header_and_tflm_code(tmp_path):
    # the LiteRT builder records the header by name, beside the .tflite
    cand = _cand("int8-full", "artifacts/int8-full.tflite", "litert",
                 {"c_header": "int8-full.h", "arena_bytes": 12_288,
                  "ops": ["CONV_2D", "FULLY_CONNECTED"]})
    out = _run(tmp_path, cand, {"artifacts/int8-full.tflite": b"TFL3model",
                                "artifacts/int8-full.h": HEADER.encode()})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "int8-full.h",
                                                     "int8-full.tflite"]
    assert (out / "int8-full.tflite").read_bytes() == b"TFL3model"
    assert (out / "int8-full.h").read_text() == HEADER
    readme = (out / "README.md").read_text()
    assert "onnxruntime" not in readme.lower() and "InferenceSession" not in readme
    assert '#include "int8-full.h"' in readme and "```cpp" in readme
    assert "resolver.AddConv2D();" in readme and "resolver.AddFullyConnected();" in readme
    assert "kArenaSize = 15360" in readme  # the estimate + 25 %, 16-byte aligned
    assert "Files: `int8-full.tflite`, `int8-full.h`." in readme


def test_litert_folder_without_header_shows_the_interpreter(tmp_path):
    cand = _cand("int8", "artifacts/int8.tflite", "litert")
    out = _run(tmp_path, cand, {"artifacts/int8.tflite": b"TFL3"})
    readme = (out / "README.md").read_text()
    assert 'Interpreter(model_path="int8.tflite"' in readme
    assert "onnxruntime" not in readme.lower()


def test_executorch_and_tensorrt_folders_use_their_runtimes(tmp_path):
    pte = _cand("pte-int8", "artifacts/pte-int8.pte", "executorch")
    readme = (_run(tmp_path / "a", pte, {"artifacts/pte-int8.pte": b"ET"}) / "README.md")
    text = readme.read_text()
    assert 'load_program("pte-int8.pte")' in text and "onnxruntime" not in text.lower()
    from edgeshrink.targets.tensorrt import NOT_TIMED_HERE, trtexec_command

    trt = _cand("trt-int8", "artifacts/trt-int8.onnx", "tensorrt",
                {"not_timed_here": NOT_TIMED_HERE, "trtexec": trtexec_command("trt-int8.onnx")})
    out = _run(tmp_path / "b", trt, {"artifacts/trt-int8.onnx": b"qdq"})
    text = (out / "README.md").read_text()
    assert "trtexec --onnx=trt-int8.onnx --int8 --fp16 --saveEngine=trt-int8.engine" in text
    assert "No TensorRT engine was built or timed" in text
    assert "InferenceSession" not in text
    assert (out / "trt-int8.onnx").read_bytes() == b"qdq"


def test_onnxruntime_folder_keeps_the_ort_snippet_and_openvino_ships_its_bin(tmp_path):
    ort = _cand("int8-static", "artifacts/int8-static.onnx", "onnxruntime")
    text = (_run(tmp_path / "a", ort, {"artifacts/int8-static.onnx": b"onnx"}) / "README.md"
            ).read_text()
    assert 'ort.InferenceSession("int8-static.onnx"' in text
    ov = _cand("ov-int8", "artifacts/ov-int8.xml", "openvino")
    out = _run(tmp_path / "b", ov, {"artifacts/ov-int8.xml": b"<net/>",
                                    "artifacts/ov-int8.bin": b"w"})
    assert {"ov-int8.xml", "ov-int8.bin"} <= {p.name for p in out.iterdir()}
    assert "compile_model(\"ov-int8.xml\"" in (out / "README.md").read_text()


def test_a_missing_companion_file_is_one_sentence(tmp_path):
    cand = _cand("int8-full", "artifacts/int8-full.tflite", "litert",
                 {"c_header": "artifacts/int8-full.h"})
    (tmp_path / "artifacts").mkdir()
    (tmp_path / cand.artifact).write_bytes(b"TFL3")
    with pytest.raises(UserError, match="int8-full.h, a file int8-full ships with, is missing"):
        shipped_files(tmp_path, cand)


def test_a_moved_run_ships_its_own_copy_of_an_absolute_companion(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for d, text in ((old, b"stale"), (new, b"here")):
        (d / "artifacts").mkdir(parents=True)
        (d / "artifacts" / "m.tflite").write_bytes(b"TFL3")
        (d / "artifacts" / "m.h").write_bytes(text)
    cand = _cand("m", "artifacts/m.tflite", "litert",
                 {"c_header": str(old / "artifacts" / "m.h")})  # as written before the move
    files = shipped_files(new, cand)
    assert [f.read_bytes() for f in files] == [b"TFL3", b"here"]


@pytest.mark.parametrize(("runtime", "artifact"), [
    ("onnxruntime", "m.onnx"), ("openvino", "m.xml"), ("litert", "m.tflite"),
    ("executorch", "m.pte"), ("tensorrt", "m.onnx")])
def test_the_readme_code_is_the_targets_own(tmp_path, runtime, artifact):
    """One source of loading code: the target's; the README only fences it."""
    from edgeshrink.recommended import loading_code
    from edgeshrink.targets import get_target
    from edgeshrink.transforms import Artifact

    cand = _cand("m", f"artifacts/{artifact}", runtime)
    (tmp_path / "artifacts").mkdir()
    (tmp_path / cand.artifact).write_bytes(b"not a model")  # cannot be opened here
    art = Artifact(path=tmp_path / cand.artifact, model=None, runtime=runtime)
    own = get_target(runtime).loading_code(art, file_name=artifact).strip()
    assert own and own in loading_code(tmp_path, cand)
    if "```" not in own:  # a bare Python snippet: it must at least compile
        compile(own, artifact, "exec")
