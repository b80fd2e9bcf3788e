"""``pip install .[zoo]`` into a clean virtualenv (torch 2.13.0 first, as docs/install.md
says), then ``edgeshrink study --model FILE --data digits.npz`` with that venv's own console
script, for an ONNX file, a ``.pt2``, TorchScript and a state dict with ``--arch``.

Slow (about 1 GB installed from the local wheel cache, a few minutes): ``make bench`` runs it;
the in-process twins in tests/integration/test_byo.py run in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from byo_files import write_files  # noqa: E402

pytestmark = pytest.mark.slow

PLAN = "int8-static:\n  - kind: int8_static\nprune-50:\n  - kind: unstructured\n    sparsity: 0.5\n"


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=300)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=600)
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=1800)
    subprocess.run([*pip, f"{ROOT}[zoo]"], check=True, timeout=1800)
    return env


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    out = write_files(folder)
    (folder / "plan.yaml").write_text(PLAN)
    out["plan"] = folder / "plan.yaml"
    return out


@pytest.mark.parametrize("kind", ["onnx", "pt2", "torchscript", "state_dict"])
def test_study_on_a_model_file_in_a_clean_venv(kind, clean_venv, files, tmp_path):
    model = (["--model", str(files["state_dict"]), "--arch", f"{files['arch']}:DigitsNet"]
             if kind == "state_dict" else ["--model", str(files[kind])])
    out = tmp_path / "run"
    got = subprocess.run([str(clean_venv / "bin" / "edgeshrink"), "study", *model, "--data",
                          str(files["npz"]), "--plan", str(files["plan"]), "--threads", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=900,
                         cwd=tmp_path)
    assert got.returncode == 0, got.stderr[-3000:]
    run = json.loads((out / "results.json").read_text())
    assert run["baseline"]["metric"]["value"] > 80.0
    names = {c["name"] for c in run["candidates"]}
    assert "int8-static" in names
    # pruning needs PyTorch layers: built for .pt2 / state dict, "not applicable" otherwise
    assert ("prune-50" in names) == (kind in ("pt2", "state_dict"))
