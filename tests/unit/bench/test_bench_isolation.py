"""The bench path needs only numpy and onnxruntime: proved in fresh processes where torch,
typer, rich, onnx, yaml and every other part of edgeshrink cannot be imported. Also the
fresh-process memory figure, which must not inherit the parent's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeshrink.bench import BenchError, peak_memory_fresh_process
from edgeshrink.bench.portable import write_pyz

SRC = Path(__file__).resolve().parents[3] / "src"

BLOCKER = """
import sys

ALLOWED_OURS = ("edgeshrink", "edgeshrink.errors", "edgeshrink.bench")
FOREIGN = {"torch", "typer", "click", "rich", "onnx", "onnxscript", "yaml", "psutil",
           "sklearn", "torch_pruning", "plotly", "matplotlib", "scipy"}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        ours_ok = name in ALLOWED_OURS or (
            name.startswith("edgeshrink.bench.") and name != "edgeshrink.bench.merge")
        if top in FOREIGN or (top == "edgeshrink" and not ours_ok):
            raise ModuleNotFoundError(f"blocked on the device: {name}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(scope="module")
def device_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("device-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(SRC)])}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120
    )


PROBE = """
import importlib
for name in ("torch", "typer", "rich", "yaml", "edgeshrink.config", "edgeshrink.results",
             "edgeshrink.bench.merge", "edgeshrink.bench"):
    try:
        importlib.import_module(name)
        print(name, "ok")
    except ImportError:
        print(name, "blocked")
"""


def test_blocker_really_blocks(device_env):
    proc = _run(["-c", PROBE], device_env)
    status = dict(line.split() for line in proc.stdout.splitlines())
    assert status.pop("edgeshrink.bench") == "ok", proc.stderr
    assert set(status.values()) == {"blocked"}, status


def test_python_m_bench_runs_without_torch_or_the_rest(device_env, mlp_path):
    proc = _run(["-m", "edgeshrink.bench", str(mlp_path), "--runs", "5", "--json"], device_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["latency_ms"]["count"] == 5
    # Without Rich the table is plain text; bad input is still one sentence, exit 2.
    proc = _run(["-m", "edgeshrink.bench", str(mlp_path), "--runs", "2"], device_env)
    assert proc.returncode == 0 and "latency p50" in proc.stdout, proc.stderr
    proc = _run(["-m", "edgeshrink.bench", "nothing.onnx"], device_env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1


def test_single_file_pyz_runs_on_a_bare_device(device_env, mlp_path, tmp_path):
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    env = {**device_env, "PYTHONPATH": device_env["PYTHONPATH"].split(os.pathsep)[0]}
    proc = _run([str(pyz), str(mlp_path), "--runs", "3", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["latency_ms"]["count"] == 3


def test_fresh_process_memory_does_not_inherit_the_parent(mlp_path):
    ballast = np.ones(300 * 2**20 // 8)  # 300 MiB resident in this (parent) process
    peak = peak_memory_fresh_process(mlp_path, threads=1, runs=3)
    # numpy + onnxruntime + a tiny model: tens of MiB. ru_maxrss would report >= 300 MiB
    # here, because Linux carries the parent's peak into the child across fork+exec.
    assert 10 < peak < 200
    assert ballast.sum() > 0


def test_fresh_process_errors_are_bench_errors(tmp_path, mlp_path):
    with pytest.raises(BenchError, match="does not exist"):
        peak_memory_fresh_process(tmp_path / "gone.onnx")
    with pytest.raises(BenchError, match="has no array for model input 'X'"):
        peak_memory_fresh_process(mlp_path, {"nope": np.zeros((1, 16), np.float32)})


@pytest.mark.slow
def test_real_venv_with_only_numpy_and_onnxruntime(tmp_path, mlp_path):
    """A real bare environment (pip from the registry): only numpy and onnxruntime."""
    venv = tmp_path / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "numpy", "onnxruntime"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if pip.returncode:
        pytest.skip(f"no package registry: {pip.stderr.strip()[-200:]}")
    pyz = write_pyz(tmp_path / "edgeshrink-bench.pyz")
    proc = subprocess.run(
        [str(py), str(pyz), str(mlp_path), "--runs", "3", "--json"],
        capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["latency_ms"]["count"] == 3
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 1
