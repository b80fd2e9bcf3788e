"""``edgeshrink bench`` on .tflite (LiteRT) and .pte (ExecuTorch) files as well as .onnx: the
file's suffix picks the runtime, each report names it, a missing runtime is one sentence
naming the ``pip install``, and a device with only numpy and that runtime runs it (the
zipapp too). The runtime sessions are test doubles of ``rt_litert`` / ``rt_executorch``
(``rt_doubles.py``) over the real interpreters, on tiny files built here."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import rt_doubles
from test_bench_isolation import BLOCKER

from edgeshrink.bench import BenchError, BenchOptions, bench_model, compare, generate_feeds
from edgeshrink.bench.inputs import InputSpec
from edgeshrink.bench.portable import write_pyz
from edgeshrink.bench.session import open_session, runtime_for

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SRC = HERE.parents[2] / "src"
OPTS = BenchOptions(runs=5, warmup=1, threads=1)


@pytest.fixture(scope="module")
def tflite_path(tmp_path_factory) -> Path:
    """A copy of data/tiny.tflite (made by data/make_tiny_runtimes.py)."""
    pytest.importorskip("ai_edge_litert")
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    shutil.copy(DATA / "tiny.tflite", path)
    return path


@pytest.fixture(scope="module")
def pte_path(tmp_path_factory) -> Path:
    """A copy of data/tiny.pte (XNNPACK-delegated, made by data/make_tiny_runtimes.py)."""
    pytest.importorskip("executorch.runtime")
    path = tmp_path_factory.mktemp("pte") / "tiny.pte"
    shutil.copy(DATA / "tiny.pte", path)
    return path


@pytest.fixture
def doubles(monkeypatch):
    rt_doubles.install(monkeypatch, "rt_litert")
    rt_doubles.install(monkeypatch, "rt_executorch")


# ------------------------------------------------------------------ dispatch


def test_suffix_picks_the_runtime_and_headers_name_files_with_other_suffixes(tmp_path):
    assert [runtime_for(f"m{s}").name for s in (".onnx", ".tflite", ".TFLITE", ".pte")] == [
        "onnxruntime", "litert", "litert", "executorch"]
    tfl = tmp_path / "model.bin"
    tfl.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(16))  # FlatBuffer with LiteRT's identifier
    pte = tmp_path / "model.dat"
    pte.write_bytes(b"\x1c\x00\x00\x00ET12" + bytes(16))
    assert runtime_for(tfl).name == "litert" and runtime_for(pte).name == "executorch"
    assert runtime_for(tmp_path / "gone.model").name == "onnxruntime"  # as before


@pytest.mark.parametrize("suffix,package", [(".tflite", "ai-edge-litert"),
                                            (".pte", "executorch")])
def test_missing_runtime_module_is_one_sentence_naming_the_pip_install(
        tmp_path, monkeypatch, suffix, package):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(b"0" * 32)
    module = "rt_litert" if suffix == ".tflite" else "rt_executorch"
    monkeypatch.setitem(sys.modules, f"edgeshrink.bench.{module}", None)  # not there
    with pytest.raises(BenchError, match=f"pip install {package}") as exc:
        open_session(path)
    assert f"edgeshrink.bench.{module} is missing" in str(exc.value)
    # the module is there but its runtime is not installed
    fake = rt_doubles.types.ModuleType(module)

    def no_runtime(path, threads=1):
        raise ModuleNotFoundError("No module named 'ai_edge_litert'", name="ai_edge_litert")

    fake.open_session = no_runtime
    monkeypatch.setitem(sys.modules, f"edgeshrink.bench.{module}", fake)
    with pytest.raises(BenchError, match=rf"cannot be imported .*`pip install {package}`\.$"):
        open_session(path)

    def wrapped(path, threads=1):  # a session that re-raises the ImportError as its own error
        try:
            no_runtime(path)
        except ImportError as exc:
            raise RuntimeError("the runtime is not installed") from exc

    fake.open_session = wrapped
    with pytest.raises(BenchError, match=rf"cannot be imported .*`pip install {package}`\.$"):
        open_session(path)


def test_unloadable_file_and_onnx_only_provider_are_one_sentence(tmp_path, doubles):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(BenchError, match="broken.tflite is not a loadable .tflite model for "
                                         "LiteRT"):
        open_session(bad)
    with pytest.raises(BenchError, match="--provider CUDAExecutionProvider is an ONNX Runtime "
                                         "setting"):
        open_session(bad, provider="CUDAExecutionProvider")


def test_int8_inputs_are_spread_over_their_range_and_indices_stay_one():
    feeds = generate_feeds([InputSpec("q", (1, 3, 8, 8), "tensor(int8)"),
                            InputSpec("u", (1, 64), "tensor(uint8)"),
                            InputSpec("ids", (1, 7), "tensor(int64)")], seed=0)
    q, u = feeds["q"], feeds["u"]
    assert q.dtype == np.int8 and q.min() < -100 and q.max() > 100 and len(np.unique(q)) > 50
    assert u.dtype == np.uint8 and u.min() < 30 and u.max() > 225
    assert (feeds["ids"] == 1).all()


# ------------------------------------------------------------------ measuring


def test_tflite_report_names_litert_and_measures_the_file(tflite_path, doubles):
    rep = bench_model(tflite_path, OPTS)
    assert rep["runtime"] == {"name": "litert", "label": "LiteRT", "package": "ai-edge-litert",
                              "version": metadata.version("ai-edge-litert")}
    assert rep["versions"]["ai-edge-litert"] == metadata.version("ai-edge-litert")
    assert "onnxruntime" not in rep["versions"]
    assert rep["model"]["runtime"] == "litert"
    assert rep["model"]["size_bytes"] == tflite_path.stat().st_size
    assert rep["model"]["inputs"][0]["shape"] == [1, 3, 8, 8]
    assert rep["model"]["inputs"][0]["type"] == "tensor(float)"
    assert rep["latency_ms"]["count"] == 5 and rep["first_inference_ms"] > 0
    assert rep["peak_rss_mb"] > 10


@pytest.mark.parametrize("fixture", ["tflite_path", "pte_path"])
def test_runtime_sessions_reproduce_pytorch(fixture, request, doubles, monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    from make_tiny_runtimes import tiny_model

    model, (x,) = tiny_model()
    sess = open_session(request.getfixturevalue(fixture))
    (name,) = [i.name for i in sess.get_inputs()]
    (out,) = sess.run(None, {name: x.numpy()})
    np.testing.assert_allclose(out, model(x).detach().numpy(), atol=1e-5)


def test_pte_report_names_executorch(pte_path, doubles):
    rep = bench_model(pte_path, OPTS)
    assert rep["runtime"]["name"] == "executorch"
    assert rep["runtime"]["version"] == metadata.version("executorch")
    assert rep["model"]["size_bytes"] == pte_path.stat().st_size
    assert rep["model"]["outputs"][0]["shape"] == [1, 5]
    assert rep["latency_ms"]["count"] == 5


def test_compare_across_runtimes(tflite_path, pte_path, doubles, tmp_path):
    from bench_onnx_models import make_mlp

    onnx = make_mlp(tmp_path / "mlp.onnx")
    rep = compare([onnx, tflite_path, pte_path], OPTS)
    assert [m["model"]["runtime"] for m in rep["models"]] == ["onnxruntime", "litert",
                                                              "executorch"]
    assert [r["name"] for r in rep["runtimes"]] == ["onnxruntime", "litert", "executorch"]
    assert set(rep["ratios"]) == {"tiny.tflite/mlp.onnx", "tiny.pte/mlp.onnx"}
    size = rep["ratios"]["tiny.tflite/mlp.onnx"]["size"]
    assert size == pytest.approx(tflite_path.stat().st_size / onnx.stat().st_size)
    assert all(m["latency_ms"]["count"] == 5 for m in rep["models"])


# ------------------------------------------------------------------ on the device


def _device_env(tmp_path: Path, *, block: tuple[str, ...], doubles: tuple[str, ...]) -> dict:
    """A fresh process that cannot import torch & co. nor the runtimes in ``block``."""
    site = tmp_path / "site"
    site.mkdir()
    blocker = BLOCKER.replace('"matplotlib", "scipy"}',
                              '"matplotlib", "scipy", ' + ", ".join(map(repr, block)) + "}")
    assert blocker != BLOCKER
    text = blocker + rt_doubles.SITECUSTOMIZE.format(here=str(HERE), names=doubles)
    (site / "sitecustomize.py").write_text(text)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_device_with_only_numpy_and_litert_benches_a_tflite_in_a_fresh_process(
        tflite_path, tmp_path):
    env = _device_env(tmp_path, block=("onnxruntime", "executorch", "torchao", "litert_torch"),
                      doubles=("rt_litert",))
    proc = _run(["-m", "edgeshrink.bench", str(tflite_path), "--runs", "3", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["runtime"]["name"] == "litert" and rep["latency_ms"]["count"] == 3
    # a fresh process's own peak: numpy + the interpreter + a tiny model
    assert 10 < rep["peak_rss_mb"] < 300


def test_pyz_without_the_runtime_says_what_to_install(tmp_path, tflite_path):
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    env = _device_env(tmp_path, block=("onnxruntime", "ai_edge_litert", "executorch"),
                      doubles=())
    env["PYTHONPATH"] = env["PYTHONPATH"].split(os.pathsep)[0]  # only the zipapp's own code
    for model, package in ((tflite_path, "ai-edge-litert"), (tmp_path / "m.pte", "executorch")):
        Path(tmp_path / "m.pte").write_bytes(b"0" * 16)
        proc = _run([str(pyz), str(model), "--runs", "2"], env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and f"`pip install {package}`" in proc.stderr


# Imports the zipapp's modules may make: the standard library, numpy, the zipapp's own
# edgeshrink modules at module level; inside functions also the runtimes (ExecuTorch's
# Python runtime takes torch tensors) and Rich, which draws tables where it is installed.
_RUNTIMES = {"onnxruntime", "ai_edge_litert", "tflite_runtime", "executorch", "torch", "rich"}


def _imports(tree: ast.Module):
    for node in ast.walk(tree):
        top_level = node in tree.body
        if isinstance(node, ast.Import):
            yield from ((a.name, top_level) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, top_level


def test_every_module_in_the_pyz_imports_only_what_a_device_has(tmp_path):
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    with zipfile.ZipFile(pyz) as zf:
        sources = {n: zf.read(n).decode() for n in zf.namelist() if n.endswith(".py")}
    ours = {n.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for n in sources}
    assert {"edgeshrink.bench.session", "edgeshrink.bench.runner"} <= ours
    # the LiteRT / ExecuTorch sessions travel with it once they exist
    assert {f"edgeshrink.bench.{p.stem}" for p in (SRC / "edgeshrink/bench").glob("rt_*.py")} \
        <= ours
    for name, text in sources.items():
        for mod, top_level in _imports(ast.parse(text)):
            root = mod.split(".")[0]
            ok = (root in sys.stdlib_module_names or root == "numpy" or mod in ours
                  or (not top_level and root in _RUNTIMES))
            assert ok, f"{name} imports {mod} ({'module level' if top_level else 'function'})"


@pytest.mark.slow
def test_real_venv_with_only_numpy_and_ai_edge_litert(tmp_path, request):
    """A real bare environment (pip from the registry): numpy and ai-edge-litert only."""
    if not (SRC / "edgeshrink/bench/rt_litert.py").is_file():
        pytest.skip("edgeshrink.bench.rt_litert is not in this checkout yet")
    tflite_path = request.getfixturevalue("tflite_path")
    venv = tmp_path / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "ai-edge-litert"],
                         capture_output=True, text=True, timeout=900)
    if pip.returncode:
        pytest.skip(f"no package registry: {pip.stderr.strip()[-200:]}")
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    proc = subprocess.run([str(py), str(pyz), str(tflite_path), "--runs", "3", "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["runtime"]["name"] == "litert" and rep["latency_ms"]["count"] == 3
    for absent in ("onnxruntime", "torch"):
        assert subprocess.run([str(py), "-c", f"import {absent}"],
                              capture_output=True).returncode == 1
